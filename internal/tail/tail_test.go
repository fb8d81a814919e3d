package tail

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHubFiltersAndOrders(t *testing.T) {
	h := New[int](Config{Buffer: 8})
	even, err := h.Subscribe(func(i int) bool { return i%2 == 0 })
	if err != nil {
		t.Fatal(err)
	}
	all, _ := h.Subscribe(nil)
	h.Publish([]int{1, 2, 3, 4})
	h.Publish([]int{6})
	for _, want := range []int{2, 4, 6} {
		if ev := <-even.C(); ev.Item != want || ev.Dropped != 0 {
			t.Fatalf("even: %+v, want %d", ev, want)
		}
	}
	for _, want := range []int{1, 2, 3, 4, 6} {
		if ev := <-all.C(); ev.Item != want {
			t.Fatalf("all: %+v, want %d", ev, want)
		}
	}
	h.Close()
	if _, ok := <-even.C(); ok {
		t.Fatal("channel open after Close")
	}
	all.Close() // idempotent after the hub closed
	if _, err := h.Subscribe(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
}

// TestHubDropsForSlowSubscriber: a subscriber that does not read never
// blocks Publish; what it missed is counted on the next item it gets.
func TestHubDropsForSlowSubscriber(t *testing.T) {
	h := New[int](Config{Buffer: 2, MaxSubscribers: 1})
	s, _ := h.Subscribe(nil)
	defer s.Close()
	if _, err := h.Subscribe(nil); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("second subscriber: %v", err)
	}
	h.Publish([]int{1, 2, 3, 4, 5}) // 3, 4, 5 dropped: never blocks
	<-s.C()
	<-s.C()
	h.Publish([]int{6})
	if ev := <-s.C(); ev.Item != 6 || ev.Dropped != 3 {
		t.Fatalf("got %+v, want item 6 after 3 dropped", ev)
	}
	if h.Subscribers() != 1 {
		t.Fatalf("subscribers %d", h.Subscribers())
	}
}

// TestHubQuotas: a full quota refuses further subscriptions holding its
// key, whatever the hub-wide room, and closing a subscription frees its
// place in every quota it held.
func TestHubQuotas(t *testing.T) {
	h := New[int](Config{MaxSubscribers: 10})
	defer h.Close()
	addrA := Quota{Key: "addr:a", Limit: 2}
	addrB := Quota{Key: "addr:b", Limit: 2}
	tok := Quota{Key: "token:x", Limit: 3}

	a1, err := h.Subscribe(nil, addrA, tok)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := h.Subscribe(nil, addrA, tok)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		quotas []Quota
		want   string // the full quota's key, "" for success
	}{
		{"address full", []Quota{addrA}, "addr:a"},
		{"address full, token has room", []Quota{addrA, tok}, "addr:a"},
		{"other address, token has room", []Quota{addrB, tok}, ""},
		{"token full", []Quota{addrB, tok}, "token:x"},
		{"no limit", []Quota{{Key: "addr:c"}}, ""},
	}
	var open []*Subscription[int]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := h.Subscribe(nil, tc.quotas...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("subscribe: %v", err)
				}
				open = append(open, s)
				return
			}
			var qe *QuotaError
			if !errors.As(err, &qe) || !errors.Is(err, ErrQuotaExceeded) || qe.Quota.Key != tc.want {
				t.Fatalf("subscribe: %v, want the quota of %s full", err, tc.want)
			}
		})
	}
	if got := h.Held("token:x"); got != 3 {
		t.Fatalf("token held by %d subscriptions, want 3", got)
	}
	a1.Close()
	a1.Close() // idempotent: releases once
	if got := h.Held("addr:a"); got != 1 {
		t.Fatalf("addr:a held by %d after close, want 1", got)
	}
	if s, err := h.Subscribe(nil, addrA, tok); err != nil {
		t.Fatalf("subscribe after a close: %v", err)
	} else {
		s.Close()
	}
	a2.Close()
	for _, s := range open {
		s.Close()
	}
	if n := h.Held("addr:a") + h.Held("addr:b") + h.Held("token:x") + h.Held("addr:c"); n != 0 || h.Subscribers() != 0 {
		t.Fatalf("%d quota places and %d subscribers left after every close", n, h.Subscribers())
	}
}

// TestHubQuotaBeforeGlobal: a subscriber over its own quota is told so
// even when the hub is full, and a hub-wide refusal holds no quota place.
func TestHubQuotaBeforeGlobal(t *testing.T) {
	h := New[int](Config{MaxSubscribers: 1})
	defer h.Close()
	q := Quota{Key: "addr:a", Limit: 1}
	if _, err := h.Subscribe(nil, q); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(nil, q); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("over quota on a full hub: %v", err)
	}
	if _, err := h.Subscribe(nil, Quota{Key: "addr:b", Limit: 1}); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("full hub: %v", err)
	}
	if h.Held("addr:b") != 0 {
		t.Fatal("a refused subscription holds a quota place")
	}
	h.Close() // releases everything; later closes are no-ops
	if h.Held("addr:a") != 0 {
		t.Fatal("quota held after the hub closed")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero takes defaults", Config{}, ""},
		{"set", Config{Buffer: 8, MaxSubscribers: 16}, ""},
		{"negative buffer", Config{Buffer: -1}, "buffer"},
		{"negative max", Config{MaxSubscribers: -1}, "max_subscribers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.HasPrefix(err.Error(), tc.want+":") {
				t.Fatalf("Validate: %v, want an error about %q", err, tc.want)
			}
		})
	}
}
