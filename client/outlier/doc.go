// Package outlier ejects misbehaving instances from load balancing passively,
// from the outcomes of real calls, in the manner of Envoy's outlier detection:
//
//   - consecutive server errors (5xx, or gRPC UNAVAILABLE and the like);
//   - consecutive local-origin failures (connect refused, reset, timeout);
//   - success-rate deviation: every Interval, instances whose success rate is
//     more than StdevFactor standard deviations below the mean of those with
//     enough traffic are ejected;
//   - latency: every LatencyInterval, an instance whose mean latency is at
//     least LatencyFactor times the median of its peers' is ejected (reason
//     "latency"), which P2C over peak-EWMA alone does not achieve under load.
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
