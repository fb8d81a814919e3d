package servicemap_test

import (
	"context"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/mapstore"
)

// flush is the deriver's flush interval in the series fixtures.
const flush = 15 * time.Second

var spanBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000, 30000, 60000, math.Inf(1)}

func formatLe(b float64) string {
	if math.IsInf(b, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(b, 'f', -1, 64)
}

// series builds a label set from name and label pairs.
func series(name string, kv ...string) labels.Labels {
	return labels.FromStrings(append([]string{"__name__", name}, kv...)...)
}

// counterRun writes a counter as the deriver does: 0 one flush before
// from, then the running total at every flush from from to to, each
// flush adding inc.
func (w *writer) counterRun(ls labels.Labels, from, to time.Time, inc float64) {
	w.tb.Helper()
	w.add(ls, from.Add(-flush), 0)
	v := 0.0
	for t := from; !t.After(to); t = t.Add(flush) {
		v += inc
		w.add(ls, t, v)
	}
}

// histRun writes a classic histogram (name_bucket, _sum, _count with the
// labels kv) as the deriver does, each flush observing obs.
func (w *writer) histRun(name string, buckets []float64, from, to time.Time, obs []float64, kv ...string) {
	w.tb.Helper()
	for _, b := range buckets {
		n := 0.0
		for _, o := range obs {
			if o <= b {
				n++
			}
		}
		w.counterRun(series(name+"_bucket", append([]string{"le", formatLe(b)}, kv...)...), from, to, n)
	}
	sum := 0.0
	for _, o := range obs {
		sum += o
	}
	w.counterRun(series(name+"_sum", kv...), from, to, sum)
	w.counterRun(series(name+"_count", kv...), from, to, float64(len(obs)))
}

// fixture is the data of the map tests: a 10 minute window [start, end)
// of whole minutes.
type fixture struct {
	start, end time.Time
}

const (
	spanCalls = "traces_span_metrics_calls"
	spanDur   = "traces_span_metrics_duration"
)

// writeSeries writes the series the Monitor and the marks read, over
// [start−3m, start+12m]:
//
//   - span metrics of user-service (prod): SERVER 4 calls per flush of
//     which 1 error, latencies 3, 7, 30, 300 ms; a CLIENT series of 7
//     calls per flush; of gateway: SERVER 1 call per flush;
//   - the client's decisions on gateway → user-service: the breaker of
//     127.0.0.1:3003 closed then open from start+6m, 127.0.0.1:3004
//     ejected throughout, the retry budget exhausted twice at start+8m;
//     on gateway → inventory (which gets no call): 127.0.0.1:3010
//     ejected throughout.
func writeSeries(t testing.TB, w *writer, start time.Time) fixture {
	t.Helper()
	end := start.Add(10 * time.Minute)
	after := end.Add(2 * time.Minute)
	before := start.Add(-3 * time.Minute)
	m := func(d time.Duration) time.Time { return start.Add(d) }

	usvc := []string{"vigil_replica", "r2", "service_name", "user-service", "span_name", "GET /users", "span_kind", "SPAN_KIND_SERVER", "deployment_environment", "prod"}
	w.counterRun(series(spanCalls, append([]string{"status_code", "STATUS_CODE_UNSET"}, usvc...)...), before, after, 3)
	w.counterRun(series(spanCalls, append([]string{"status_code", "STATUS_CODE_ERROR"}, usvc...)...), before, after, 1)
	w.histRun(spanDur, spanBuckets, before, after, []float64{3, 7, 30, 300}, usvc...)
	uclient := []string{"vigil_replica", "r2", "service_name", "user-service", "span_name", "SELECT", "span_kind", "SPAN_KIND_CLIENT", "deployment_environment", "prod", "status_code", "STATUS_CODE_UNSET"}
	w.counterRun(series(spanCalls, uclient...), before, after, 7)
	w.counterRun(series(spanCalls, "vigil_replica", "r2", "service_name", "gateway", "span_name", "GET /", "span_kind", "SPAN_KIND_SERVER", "deployment_environment", "prod", "status_code", "STATUS_CODE_OK"), before, after, 1)

	breaker := series("vigil_client_breaker_state_ratio", "job", "gateway", "vigil_service", "user-service", "vigil_instance", "127.0.0.1:3003", "vigil_breaker_scope", "instance")
	ejected := series("vigil_client_endpoint_ejected_ratio", "job", "gateway", "vigil_service", "user-service", "vigil_instance", "127.0.0.1:3004")
	inventory := series("vigil_client_endpoint_ejected_ratio", "job", "gateway", "vigil_service", "inventory", "vigil_instance", "127.0.0.1:3010")
	exhausted := series("vigil_client_retry_budget_exhausted_total", "job", "gateway", "vigil_service", "user-service")
	for ts := before; !ts.After(end); ts = ts.Add(30 * time.Second) {
		state := 0.0
		if !ts.Before(m(6 * time.Minute)) {
			state = 2
		}
		w.add(breaker, ts, state)
		w.add(ejected, ts, 1)
		w.add(inventory, ts, 1)
		ex := 0.0
		if !ts.Before(m(8 * time.Minute)) {
			ex = 2
		}
		w.add(exhausted, ts, ex)
	}
	w.commit()
	return fixture{start: start, end: end}
}

// Bucket indexes of storage.MapLatencyBounds (0.0005 0.001 0.0025 0.005
// 0.01 0.025 0.05 0.1 0.25 0.5 1 …).
const (
	le1ms   = 1
	le2_5ms = 2
	le5ms   = 3
	le10ms  = 4
	le25ms  = 5
	le50ms  = 6
	le500ms = 9
	le1s    = 10
)

// hist returns a histogram of the map's buckets with n observations in
// each of the buckets at idx.
func hist(n uint64, idx ...int) []uint64 {
	h := make([]uint64, len(storage.MapLatencyBounds)+1)
	for _, i := range idx {
		h[i] += n
	}
	return h
}

// rollups gathers the rows of a fixture by minute and writes them with
// the store's WriteMapRollups, one call per minute, in minute order as
// the deriver does.
type rollups struct {
	rows map[time.Time][]storage.MapRollup
}

// run writes key's rows for every minute from from to to: the row of the
// k-th minute holds k times per, cumulative as the deriver's rows are.
func (r *rollups) run(key storage.MapKey, from, to time.Time, per storage.MapCounts) {
	if r.rows == nil {
		r.rows = map[time.Time][]storage.MapRollup{}
	}
	var k uint64
	for m := from; !m.After(to); m = m.Add(time.Minute) {
		k++
		c := storage.MapCounts{Calls: k * per.Calls, Failed: k * per.Failed,
			ServerSum: float64(k) * per.ServerSum, ClientSum: float64(k) * per.ClientSum}
		for _, v := range per.ServerHist {
			c.ServerHist = append(c.ServerHist, k*v)
		}
		for _, v := range per.ClientHist {
			c.ClientHist = append(c.ClientHist, k*v)
		}
		r.rows[m] = append(r.rows[m], storage.MapRollup{Key: key, Counts: c})
	}
}

func (r *rollups) write(tb testing.TB, store *mapstore.Store) {
	tb.Helper()
	minutes := make([]time.Time, 0, len(r.rows))
	for m := range r.rows {
		minutes = append(minutes, m)
	}
	slices.SortFunc(minutes, func(a, b time.Time) int { return a.Compare(b) })
	for _, m := range minutes {
		if err := store.WriteMapRollups(context.Background(), m, r.rows[m]); err != nil {
			tb.Fatalf("write rollups of %s: %v", m, err)
		}
	}
}

// edgeKey and nodeKey build map keys.
func edgeKey(replica string, inc int64, client, server, conn, env, ns string) storage.MapKey {
	return storage.MapKey{Replica: replica, Incarnation: inc, Client: client, Server: server, ConnectionType: conn,
		ClientEnv: env, ClientNs: ns, ServerEnv: env, ServerNs: ns}
}

func nodeKey(replica string, inc int64, service, env, ns string) storage.MapKey {
	return storage.MapKey{Replica: replica, Incarnation: inc, Node: true, Server: service, ServerEnv: env, ServerNs: ns}
}

// writeRollups writes the rollups the map tests read; the figures in the
// window [start, start+10m) are:
//
//   - gateway → user-service (prod, shop), a replica restart: r1 from
//     start−3m to start+4m, 8 calls a minute (40 in the window), server
//     latencies 3 ms and 20 ms, client 1 s; r2 from start+5m to
//     start+12m, 12 calls and 4 failures a minute (60 and 20), server
//     latencies 3 ms, 40 ms and 700 ms, client 1 s: 100 calls, 20 failed;
//   - gateway → redis (database, prod), a key starting inside the window
//     at start+2m, 4 calls a minute (32), client latencies only (2 ms);
//   - user-service → postgres (database, no attributes), two
//     incarnations of r2: from start−1m to start+3m, then from start+7m to
//     start+9m, 3 calls a minute (12 + 9 = 21), client latencies ≤ 1 ms;
//   - gateway → postgres (database, prod), 1 call a minute (10), client
//     latencies 20 ms;
//   - user → gateway (virtual node, server prod), 2 calls a minute (20),
//     server latencies 5 ms;
//   - gateway → payments-api (virtual node: a peer, prod), 1 call a
//     minute (10), client latencies 300 ms;
//   - user-service → orders (messaging, prod), 2 calls a minute (20),
//     client latencies 5 ms;
//   - gateway-stg → user-service-stg (staging), 5 calls a minute (50);
//   - nodes: user-service (prod, shop) on r1 then r2, 16 spans a minute of
//     which 4 errors (160 and 40), latencies 3, 7, 30 and 300 ms; gateway
//     (prod, shop) 4 a minute (40), latencies 1 ms; billing, whose rows
//     end before the window.
func writeRollups(tb testing.TB, store *mapstore.Store, start time.Time) {
	tb.Helper()
	m := func(minutes int) time.Time { return start.Add(time.Duration(minutes) * time.Minute) }
	var r rollups
	gwus := func(replica string, inc int64) storage.MapKey {
		return edgeKey(replica, inc, "gateway", "user-service", "", "prod", "shop")
	}
	r.run(gwus("r1", 1), m(-3), m(4), storage.MapCounts{Calls: 8,
		ServerHist: addAll(hist(4, le5ms), hist(4, le25ms)), ClientHist: hist(8, le1s), ServerSum: 4*0.003 + 4*0.02, ClientSum: 8})
	r.run(gwus("r2", 1), m(5), m(12), storage.MapCounts{Calls: 12, Failed: 4,
		ServerHist: hist(4, le5ms, le50ms, le1s), ClientHist: hist(12, le1s), ServerSum: 4 * (0.003 + 0.04 + 0.7), ClientSum: 12})
	redis := edgeKey("r2", 2, "gateway", "redis", "database", "", "")
	redis.ClientEnv = "prod"
	r.run(redis, m(2), m(12), storage.MapCounts{Calls: 4, ClientHist: hist(4, le2_5ms), ClientSum: 4 * 0.002})
	r.run(edgeKey("r2", 3, "user-service", "postgres", "database", "", ""), m(-1), m(3), storage.MapCounts{Calls: 3, ClientHist: hist(3, le1ms)})
	r.run(edgeKey("r2", 4, "user-service", "postgres", "database", "", ""), m(7), m(9), storage.MapCounts{Calls: 3, ClientHist: hist(3, le1ms)})
	gwpg := edgeKey("r2", 5, "gateway", "postgres", "database", "", "")
	gwpg.ClientEnv = "prod"
	r.run(gwpg, m(-5), m(12), storage.MapCounts{Calls: 1, ClientHist: hist(1, le25ms)})
	user := edgeKey("r2", 6, "user", "gateway", "virtual_node", "", "")
	user.ServerEnv = "prod"
	r.run(user, m(-5), m(12), storage.MapCounts{Calls: 2, ServerHist: hist(2, le5ms), ClientHist: hist(2, le5ms)})
	peer := edgeKey("r2", 7, "gateway", "payments-api", "virtual_node", "", "")
	peer.ClientEnv = "prod"
	r.run(peer, m(-5), m(12), storage.MapCounts{Calls: 1, ClientHist: hist(1, le500ms)})
	orders := edgeKey("r2", 8, "user-service", "orders", "messaging_system", "", "")
	orders.ClientEnv = "prod"
	r.run(orders, m(-5), m(12), storage.MapCounts{Calls: 2, ClientHist: hist(2, le5ms)})
	r.run(edgeKey("r2", 9, "gateway-stg", "user-service-stg", "", "staging", ""), m(-5), m(12), storage.MapCounts{Calls: 5})

	usvc := storage.MapCounts{Calls: 16, Failed: 4, ServerHist: hist(4, le5ms, le10ms, le50ms, le500ms)}
	r.run(nodeKey("r1", 10, "user-service", "prod", "shop"), m(-3), m(4), usvc)
	r.run(nodeKey("r2", 11, "user-service", "prod", "shop"), m(5), m(12), usvc)
	r.run(nodeKey("r2", 12, "gateway", "prod", "shop"), m(-5), m(12), storage.MapCounts{Calls: 4, ServerHist: hist(4, le1ms)})
	r.run(nodeKey("r2", 13, "billing", "prod", "shop"), m(-8), m(-2), storage.MapCounts{Calls: 4, ServerHist: hist(4, le1ms)})
	r.write(tb, store)
}

// addAll sums histograms of one length.
func addAll(hs ...[]uint64) []uint64 {
	out := make([]uint64, len(hs[0]))
	for _, h := range hs {
		for i, c := range h {
			out[i] += c
		}
	}
	return out
}
