package semconv

import (
	"slices"
	"testing"
)

func TestAliasesBothWays(t *testing.T) {
	for _, r := range Renames {
		if !slices.Contains(Aliases(r.Old), Alias{Key: r.New, Side: r.Side}) {
			t.Errorf("%s: missing alias %s", r.Old, r.New)
		}
		if !slices.Contains(Aliases(r.New), Alias{Key: r.Old, Side: r.Side}) {
			t.Errorf("%s: missing alias %s", r.New, r.Old)
		}
	}
	if a := Aliases("exception.message"); a != nil {
		t.Errorf("exception.message has aliases %v", a)
	}
	// server.address is net.peer.name on clients, net.host.name on servers.
	got := Aliases("server.address")
	want := []Alias{{"net.peer.name", NotServerSide}, {"net.host.name", ServerSide}}
	if !slices.Equal(got, want) {
		t.Errorf("server.address aliases = %v, want %v", got, want)
	}
	for _, c := range []struct {
		s              Side
		server, client bool
	}{{AnySide, true, true}, {ServerSide, true, false}, {NotServerSide, false, true}} {
		if c.s.Applies(true) != c.server || c.s.Applies(false) != c.client {
			t.Errorf("side %d: applies(server)=%v applies(client)=%v", c.s, c.s.Applies(true), c.s.Applies(false))
		}
	}
}
