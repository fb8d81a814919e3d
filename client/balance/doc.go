// Package balance chooses an instance for each call. It offers:
//
//   - RoundRobin: each usable instance in turn;
//   - WeightedRoundRobin: nginx's smooth weighted round robin, which
//     interleaves picks (5:1:1 gives a a b a c a a, not a a a a a b c) instead
//     of repeating an instance weight times in a list;
//   - LeastRequest: the instance with the fewest outstanding requests relative
//     to its weight, ties broken round-robin;
//   - P2CEWMA (the default): Finagle's power of two choices over peak-EWMA
//     latency — two random instances are compared by
//     (decayed peak latency) × (outstanding + 1) and the cheaper wins, which
//     routes away from slow instances within a few calls while staying O(1);
//   - RingHash: consistent hashing with bounded load (Mirrokni, Thorup,
//     Zadimoghaddam) for affinity keys, so a key keeps its instance across
//     membership changes (adding the (N+1)-th instance moves about 1/(N+1) of
//     the keys) while no instance carries more than LoadFactor times the
//     average outstanding load.
//
// A Balancer only picks among the instances its caller deems usable (not
// ejected, circuit not open, not just tried); health, ejection and retries
// live in the client. Every Balancer is safe for concurrent use. Load state
// (outstanding requests, latency) lives on Endpoint and is fed by the client
// through Begin, Finish and Observe with times from its clock.
package balance
