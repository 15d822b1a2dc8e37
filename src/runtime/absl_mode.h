/*
 * Tuning of Abseil, which gRPC core is built on, for a release program.
 */
#ifndef CRAWLAB_ABSL_MODE_H
#define CRAWLAB_ABSL_MODE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Switches off Abseil's mutex deadlock detection (a lock-order graph updated on every lock gRPC
 * takes). Call once, before any other thread starts. */
void absl_mode_release(void);

#ifdef __cplusplus
}
#endif

#endif
