package mapapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/servicemap"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
)

// TestMapAPIEndToEnd answers the map from rollups in PostgreSQL through
// the real query layer: two replicas of one edge, the second restarted
// inside the window, asked for a window that is not of whole minutes.
func TestMapAPIEndToEnd(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 2 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	store := mapstore.NewWithPartitions(pool, parts)
	end := time.Now().UTC().Truncate(time.Minute)
	start := end.Add(-10 * time.Minute)
	// run writes the rows of one replica's key from from to to, inc
	// calls a minute.
	run := func(replica string, from, to time.Time, inc uint64) {
		key := storage.MapKey{Replica: replica, Incarnation: 1, Client: "gateway", Server: "user-service"}
		n := uint64(0)
		for m := from; !m.After(to); m = m.Add(time.Minute) {
			n += inc
			if err := store.WriteMapRollups(ctx, m, []storage.MapRollup{{Key: key, Counts: storage.MapCounts{Calls: n}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	run("a", start.Add(-5*time.Minute), start.Add(3*time.Minute), 2) // 4 minutes in the window: 8 calls
	run("b", start.Add(5*time.Minute), end.Add(-time.Minute), 3)     // 5 minutes: 15 calls
	svc := servicemap.New(servicemap.Config{MaxLookback: 48 * time.Hour}, servicemap.Options{Rollups: store})
	mux := http.NewServeMux()
	New(svc, nil).Register(mux)
	rec := httptest.NewRecorder()
	// [start+20s, end−30.5s] widens to [start, end).
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/vigil/servicemap?start="+strconv.FormatInt(start.Add(20*time.Second).Unix(), 10)+
		"&end="+strconv.FormatInt(end.Add(-30500*time.Millisecond).UnixMilli(), 10), nil))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var body struct {
		Data struct {
			Start, End string
			Edges      []struct {
				Client, Server string
				Calls          uint64
				Rate           float64
				P50            *float64
			}
			Nodes []struct{ ID, Kind string }
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Data.Start != start.Format(time.RFC3339Nano) || body.Data.End != end.Format(time.RFC3339Nano) {
		t.Errorf("window %s .. %s, want %s .. %s", body.Data.Start, body.Data.End, start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
	}
	if len(body.Data.Edges) != 1 || body.Data.Edges[0].Calls != 23 || body.Data.Edges[0].Rate != 23.0/600 || body.Data.Edges[0].P50 != nil {
		t.Errorf("edges %+v, want gateway -> user-service with 23 calls (rate 23/600) and no latency: %s", body.Data.Edges, rec.Body)
	}
	if len(body.Data.Nodes) != 2 {
		t.Errorf("nodes %+v, want gateway and user-service", body.Data.Nodes)
	}
}
