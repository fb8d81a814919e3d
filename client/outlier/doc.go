// Package outlier ejects misbehaving instances from load balancing passively,
// from the outcomes of real calls, in the manner of Envoy's outlier detection:
//
//   - consecutive server errors (5xx, or gRPC UNAVAILABLE and the like);
//   - consecutive local-origin failures (connect refused, reset, timeout);
//   - success-rate deviation: every Interval, instances whose success rate is
//     more than StdevFactor standard deviations below the mean of those with
//     enough traffic are ejected;
//   - latency: every LatencyInterval, an instance is compared with a
//     threshold of LatencyFactor times the median of its peers' 0.9 quantile
//     of answer latencies (LatencyQuantile). It is ejected (reason "latency")
//     when it is mostly slow (its own 0.9 quantile reaches the threshold) or,
//     two windows in a row, often slow (at least LatencyVolume answers above
//     the threshold, and LatencyFactor times as many as its peers'). It is
//     also ejected before the window ends when, against the threshold the
//     last window set for it, it has been mostly slow since, with at least
//     LatencyVolume slow answers and LatencyFactor times its peers' mean:
//     one the balancer suddenly sends many calls (it avoided it after a slow
//     answer until its estimate decayed), or one readmitted while still
//     slow, is ejected after a few slow answers. P2C over
//     peak-EWMA alone does not keep a slow instance out under load. No
//     test is on the mean, which the fast answers of an instance slow only part
//     of the time dilute: P2C sends such an instance most of its calls while
//     it is fast, so even its 0.9 quantile can look healthy, while its slow
//     answers are the fleet's tail. All compare an instance with its peers,
//     so that noise they all share (GC, a busy host) ejects no one. An
//     instance with too few answers in a window to judge (one P2C rarely
//     picks because it is slow) keeps them for up to four more windows.
//
// An ejected instance returns after BaseEjectionTime multiplied by the number
// of times it has been ejected (capped at MaxEjectionTime); the multiplier
// shrinks again for every interval the instance stays healthy. At most
// MaxEjectionPercent of the instances (but always at least one) are ejected at
// once. The panic threshold that stops ejection from starving a fleet lives in
// the client, which knows about circuit breakers too.
//
// The Detector runs no goroutine: interval work happens lazily on the calls
// that follow it, on the injected clock. It is safe for concurrent use.
package outlier
