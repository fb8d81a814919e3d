package registry_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigil-obs/vigil/client/registry"
)

// An instance registers with Vigil's Consul-compatible API, keeps its TTL
// check passing while it serves, and deregisters when it stops.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	reg, err := registry.New(registry.Config{
		Agent:          "127.0.0.1:8500",
		Name:           "user-service",
		Address:        "10.0.0.7",
		Port:           3001,
		Tags:           []string{"v1"},
		ScrapeInterval: 15 * time.Second, // metrics_path defaults to /metrics
		TTL:            15 * time.Second,
	}, registry.Options{})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: "10.0.0.7:3001", ReadHeaderTimeout: 5 * time.Second}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return reg.Run(ctx) }) // deregisters when ctx ends
	g.Go(func() error {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	if err := g.Wait(); err != nil {
		log.Print(err)
	}
}
