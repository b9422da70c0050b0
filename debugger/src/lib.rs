//! The cluster, recording, replay and the time-travel `Session`. Filled in by the cluster and recording issues.
