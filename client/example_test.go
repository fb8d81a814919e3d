package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/client"
	"github.com/vigil-obs/vigil/client/breaker"
)

// A Client turns a logical service name into balanced, retried, observed
// calls on its instances.
func Example() {
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "user "+strings.TrimPrefix(r.URL.Path, "/users/")) // a failed write fails the call
	}))
	defer inst.Close()

	c, err := client.New(client.Config{Services: map[string]client.ServiceConfig{
		"user-service": {Target: "static:///" + inst.Listener.Addr().String()},
	}}, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			log.Print(err)
		}
	}()

	resp, err := c.HTTPClient().Get("http://user-service/users/42")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 user 42
}

// When a service's circuit is open, calls fail at once with a
// *CircuitOpenError instead of piling onto a broken service.
func Example_circuitBreaker() {
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer inst.Close()

	c, err := client.New(client.Config{Services: map[string]client.ServiceConfig{
		"user-service": {
			Target:  "static:///" + inst.Listener.Addr().String(),
			Breaker: breaker.Config{WindowSize: 5, MinimumCalls: 5, OpenDuration: time.Minute},
			Retry:   client.RetryConfig{MaxAttempts: 1},
		},
	}}, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			log.Print(err)
		}
	}()

	for range 5 {
		resp, err := c.HTTPClient().Get("http://user-service/users/1")
		if err == nil {
			resp.Body.Close()
		}
	}
	_, err = c.HTTPClient().Get("http://user-service/users/1")
	var open *client.CircuitOpenError
	fmt.Println(errors.Is(err, client.ErrCircuitOpen), errors.As(err, &open), open.Service)
	// Output: true true user-service
}
