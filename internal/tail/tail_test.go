package tail

import (
	"errors"
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
