/* binding.h - what the files of the `signalr.core` module share. */
#ifndef SIGNALR_BINDING_H
#define SIGNALR_BINDING_H

#include "compat.h"
#include "signalr.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden) /* only luaopen_signalr_core is public */
#endif

/* nil, message, details (signalr_core.c) */
int sr_lua_push_fail(lua_State *L, const signalr_error *e);
/* A list { {fd=, read=, write=}, ... } of n descriptors (events: 1 read,
 * 2 write). */
void sr_lua_push_fds(lua_State *L, const int *fds, const int *ev, int n);
/* the details table alone */
void sr_lua_push_details(lua_State *L, const signalr_error *e);
/* Add persistent mode's functions to the module table on top of the
 * stack and register its metatables (persistent.c). */
void sr_lua_open_persistent(lua_State *L);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
