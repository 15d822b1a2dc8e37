// Abseil's mutex deadlock detection, which gRPC core's locks go through: Debian builds Abseil
// with it on (its debug default), so every lock taken runs a lock-order graph check. The program
// switches it off once, before gRPC starts.
#include <absl/synchronization/mutex.h>

#include "runtime/absl_mode.h"

extern "C" void absl_mode_release(void)
{
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}
