package discovery_test

import (
	"context"
	"fmt"
	"log"

	"github.com/vigil-obs/vigil/client/discovery"
)

// A target URL names the discovery mechanism; Build turns it into a Resolver
// and a Watcher keeps the instance set current.
func Example() {
	target, err := discovery.ParseTarget("static:///10.0.0.2:3001,10.0.0.1:3001=3")
	if err != nil {
		log.Fatal(err)
	}
	r, err := discovery.Build(target, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := discovery.NewWatcher(r, discovery.WatcherOptions{})
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	<-w.Ready()
	for _, in := range w.Instances() {
		fmt.Println(in.Addr, "weight", in.Weight)
	}
	fmt.Println("stale for", w.Staleness())
	cancel()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output:
	// 10.0.0.1:3001 weight 3
	// 10.0.0.2:3001 weight 1
	// stale for 0s
}

// Other registries plug in through Builders, and a Builder given for a
// built-in scheme replaces it: this one stands in for the Consul resolver,
// whose Snapshot.Version carries X-Consul-Index for blocking queries.
func ExampleBuilderFunc() {
	consul := discovery.BuilderFunc(func(t discovery.Target) (discovery.Resolver, error) {
		return discovery.ResolverFunc(func(ctx context.Context, prev discovery.Snapshot) (discovery.Snapshot, error) {
			if prev.Version == "42" {
				<-ctx.Done() // a real one long-polls ?index=42
				return discovery.Snapshot{}, ctx.Err()
			}
			return discovery.Snapshot{Instances: []discovery.Instance{{Addr: "10.0.0.7:3001", Weight: 1}}, Version: "42"}, nil
		}), nil
	})
	target, _ := discovery.ParseTarget("consul:///user-service?passing=true")
	r, err := discovery.Build(target, map[string]discovery.Builder{"consul": consul})
	if err != nil {
		log.Fatal(err)
	}
	snap, _ := r.Resolve(context.Background(), discovery.Snapshot{})
	fmt.Println(target.Endpoint, target.Query.Get("passing"), snap.Instances[0].Addr, snap.Version)
	// Output: user-service true 10.0.0.7:3001 42
}
