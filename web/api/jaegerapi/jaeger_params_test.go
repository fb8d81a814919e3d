package jaegerapi

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/web/api"
)

func TestParseTraceSearch(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    traceSearch
		wantErr string // the error must start with it ("parameter 'x' ...")
	}{
		{
			name:  "open window and limit are left to the query layer",
			query: "service=svc",
			want:  defaults("svc"),
		},
		{
			name:  "everything",
			query: `service=svc&operation=GET+%2Fx&start=1700000000000000&end=1700000003600000&limit=50&minDuration=1.2s&maxDuration=2s&tag=a:1&tag=url:http://x:8080/&tags=` + url.QueryEscape(`{"b":"2","c":3,"d":false}`),
			want: ts(traceSearch{}, func(s *traceSearch) {
				s.Service, s.Operation = "svc", "GET /x"
				s.StartMin, s.StartMax = time.UnixMicro(1700000000000000).UTC(), time.UnixMicro(1700000003600000).UTC()
				s.Limit = 50
				s.DurationMin, s.DurationMax = 1200*time.Millisecond, 2*time.Second
				s.Tags = map[string]string{"a": "1", "url": "http://x:8080/", "b": "2", "c": "3", "d": "false"}
			}),
		},
		{
			name:  "tags override tag",
			query: "service=svc&tag=a:1&tags=" + url.QueryEscape(`{"a":"2"}`) + "&tags=" + url.QueryEscape(`{"a":"3"}`),
			want: ts(defaults("svc"), func(s *traceSearch) {
				s.Tags = map[string]string{"a": "3"}
			}),
		},
		{
			name:  "null tags",
			query: "service=svc&tags=null",
			want:  defaults("svc"),
		},
		{
			name:  "lookback hours",
			query: "service=svc&lookback=1h",
			want: ts(defaults("svc"), func(s *traceSearch) {
				s.Lookback = time.Hour
			}),
		},
		{
			name:  "lookback days from end",
			query: "service=svc&lookback=2d&end=1700000000000000",
			want: ts(defaults("svc"), func(s *traceSearch) {
				s.StartMax = time.UnixMicro(1700000000000000).UTC()
				s.Lookback = 48 * time.Hour
			}),
		},
		{
			name:  "lookback weeks",
			query: "service=svc&lookback=1w",
			want: ts(defaults("svc"), func(s *traceSearch) {
				s.Lookback = 7 * 24 * time.Hour
			}),
		},
		{
			name:  "start wins over lookback",
			query: "service=svc&lookback=1h&start=1700000000000000",
			want: ts(defaults("svc"), func(s *traceSearch) {
				s.StartMin = time.UnixMicro(1700000000000000).UTC()
			}),
		},
		{
			name:  "start without end",
			query: "service=svc&start=1700000000000000",
			want: ts(defaults("svc"), func(s *traceSearch) {
				s.StartMin = time.UnixMicro(1700000000000000).UTC()
			}),
		},
		{
			name:  "custom lookback",
			query: "service=svc&lookback=custom",
			want:  defaults("svc"),
		},
		{
			name:  "first value wins",
			query: "service=a&service=b&limit=5&limit=7",
			want: ts(defaults("a"), func(s *traceSearch) {
				s.Limit = 5
			}),
		},
		{
			name:  "zero limit is the default",
			query: "service=svc&limit=0",
			want:  defaults("svc"),
		},
		{
			name:  "max limit",
			query: "service=svc&limit=1500",
			want: ts(defaults("svc"), func(s *traceSearch) {
				s.Limit = traces.MaxLimit
			}),
		},
		{
			name:  "microsecond durations",
			query: "service=svc&minDuration=50us&maxDuration=50µs",
			want: ts(defaults("svc"), func(s *traceSearch) {
				s.DurationMin, s.DurationMax = 50*time.Microsecond, 50*time.Microsecond
			}),
		},
		{
			name:  "trace ids without service",
			query: "traceID=1&traceID=00000000000000000000000000000001&traceID=" + idCheckout,
			want: ts(traceSearch{}, func(s *traceSearch) {
				s.TraceIDs = []pcommon.TraceID{traceID("1"), traceID(idCheckout)}
			}),
		},
		{name: "service required", query: "operation=x", wantErr: "parameter 'service' is required"},
		{name: "empty service", query: "service=", wantErr: "parameter 'service' is required"},
		{name: "bad start", query: "service=s&start=1.5", wantErr: "parameter 'start' must be an integer"},
		{name: "negative start", query: "service=s&start=-1", wantErr: "parameter 'start' must not be negative"},
		{name: "huge end", query: "service=s&end=99999999999999999999", wantErr: "parameter 'end' must be an integer"},
		{name: "start after end", query: "service=s&start=2&end=1", wantErr: "parameter 'start' must not be after 'end'"},
		{name: "lookback no unit", query: "service=s&lookback=5", wantErr: "parameter 'lookback' must be a duration"},
		{name: "lookback zero", query: "service=s&lookback=0d", wantErr: "parameter 'lookback' must be positive"},
		{name: "lookback negative", query: "service=s&lookback=-1h", wantErr: "parameter 'lookback' must be positive"},
		{name: "lookback fraction of days", query: "service=s&lookback=1.5d", wantErr: "parameter 'lookback' must be a duration"},
		{name: "lookback overflow", query: "service=s&lookback=999999999d", wantErr: "parameter 'lookback' must be a duration"},
		{name: "tag without colon", query: "service=s&tag=error", wantErr: "parameter 'tag' must be key:value"},
		{name: "tag empty key", query: "service=s&tag=:x", wantErr: "parameter 'tag' has an empty key"},
		{name: "tags not json", query: "service=s&tags=a:b", wantErr: "parameter 'tags' must be a JSON object"},
		{name: "tags array", query: "service=s&tags=[1]", wantErr: "parameter 'tags' must be a JSON object"},
		{name: "tags trailing data", query: "service=s&tags=" + url.QueryEscape(`{"a":"b"}x`), wantErr: "parameter 'tags' must be a JSON object"},
		{name: "tags null value", query: "service=s&tags=" + url.QueryEscape(`{"a":null}`), wantErr: `parameter 'tags' has a bad value for "a"`},
		{name: "tags empty key", query: "service=s&tags=" + url.QueryEscape(`{"":"x"}`), wantErr: "parameter 'tags' has an empty key"},
		{name: "too many tags", query: "service=s" + manyTags(MaxSearchTags+1), wantErr: "parameter 'tag' gives more than"},
		{name: "limit not a number", query: "service=s&limit=ten", wantErr: "parameter 'limit' must be an integer"},
		{name: "limit beyond int32", query: "service=s&limit=4294967296", wantErr: "parameter 'limit' must be an integer"},
		{name: "limit negative", query: "service=s&limit=-1", wantErr: "parameter 'limit' must not be negative"},
		{name: "limit too large", query: "service=s&limit=1501", wantErr: "parameter 'limit' must be at most 1500"},
		{name: "min duration no unit", query: "service=s&minDuration=100", wantErr: "parameter 'minDuration' must be a duration"},
		{name: "max duration bad", query: "service=s&maxDuration=fast", wantErr: "parameter 'maxDuration' must be a duration"},
		{name: "min duration negative", query: "service=s&minDuration=-5ms", wantErr: "parameter 'minDuration' must not be negative"},
		{name: "max below min", query: "service=s&minDuration=2s&maxDuration=1s", wantErr: "parameter 'maxDuration' must not be less than 'minDuration'"},
		{name: "bad trace id", query: "traceID=xyz", wantErr: "parameter 'traceID' must be hexadecimal"},
		{name: "empty trace id", query: "service=s&traceID=", wantErr: "parameter 'traceID' must not be empty"},
		{name: "too many trace ids", query: strings.Repeat("traceID=1&", MaxSearchTraceIDs+1), wantErr: "parameter 'traceID' is repeated 101 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := api.ParseQuery(tt.query)
			if err != nil {
				t.Fatalf("parseQueryString: %v", err)
			}
			got, err := parseTraceSearch(q)
			if tt.wantErr != "" {
				var re *api.RequestError
				if err == nil || !errors.As(err, &re) || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want a request error starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !equalQuery(got.TraceQuery, tt.want.TraceQuery) || got.Lookback != tt.want.Lookback || len(got.TraceIDs) != len(tt.want.TraceIDs) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			for i := range got.TraceIDs {
				if got.TraceIDs[i] != tt.want.TraceIDs[i] {
					t.Errorf("TraceIDs[%d] = %s, want %s", i, got.TraceIDs[i], tt.want.TraceIDs[i])
				}
			}
		})
	}
}

// defaults is the search of service alone: window and limit left open.
func defaults(service string) traceSearch {
	return ts(traceSearch{}, func(s *traceSearch) {
		s.Service = service
	})
}

func ts(s traceSearch, f func(*traceSearch)) traceSearch {
	f(&s)
	return s
}

func manyTags(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("&tag=k")
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(":v")
	}
	return b.String()
}

func TestParseOperationQuery(t *testing.T) {
	tests := []struct {
		query   string
		wantErr string
	}{
		{query: "service=a"},
		{query: "service=a&spanKind="},
		{query: "service=a&spanKind=consumer"},
		{query: "spanKind=server", wantErr: "parameter 'service' is required"},
		{query: "service=a&spanKind=Server", wantErr: "parameter 'spanKind' must be one of"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, _ := api.ParseQuery(tt.query)
			_, err := parseOperationQuery(q)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseTraceID(t *testing.T) {
	tests := []struct {
		in      string
		want    string // formatted as Jaeger prints it
		wantErr string
	}{
		{in: "1", want: "0000000000000001"},
		{in: "abc", want: "0000000000000abc"},
		{in: "4bf92f3577b34da6", want: "4bf92f3577b34da6"},
		{in: "00000000000000004bf92f3577b34da6", want: "4bf92f3577b34da6"},
		{in: "14bf92f3577b34da6", want: "00000000000000014bf92f3577b34da6"},
		{in: "0AF7651916CD43DD8448EB211C80319C", want: "0af7651916cd43dd8448eb211c80319c"},
		{in: "ffffffffffffffffffffffffffffffff", want: "ffffffffffffffffffffffffffffffff"},
		{in: "", wantErr: "parameter 'traceID' must not be empty"},
		{in: "0", wantErr: "parameter 'traceID' must not be zero"},
		{in: "00000000000000000000000000000000", wantErr: "parameter 'traceID' must not be zero"},
		{in: "000000000000000000000000000000001", wantErr: "parameter 'traceID' must be at most 32 hex digits"},
		{in: "0x1", wantErr: "parameter 'traceID' must be hexadecimal"},
		{in: "-1", wantErr: "parameter 'traceID' must be hexadecimal"},
		{in: "+1", wantErr: "parameter 'traceID' must be hexadecimal"},
		{in: "12 4", wantErr: "parameter 'traceID' must be hexadecimal"},
		{in: "é", wantErr: "parameter 'traceID' must be hexadecimal"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := api.ParseTraceID(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := formatTraceID(id); got != tt.want {
				t.Errorf("formatTraceID = %q, want %q", got, tt.want)
			}
		})
	}
}

// maxFuzzInput caps fuzz inputs: real query strings are small, and the
// parser's cost is linear in its input anyway.
const maxFuzzInput = 4 << 10

func FuzzParseTraceQuery(f *testing.F) {
	for _, seed := range []string{
		"service=svc",
		"service=svc&operation=op&limit=10&minDuration=1ms&maxDuration=1s&start=1&end=2&lookback=1h",
		"service=svc&tags=" + url.QueryEscape(`{"http.status_code":"500","a":1,"b":true}`) + "&tag=k:v:w",
		"traceID=1&traceID=" + idCheckout,
		"service=s&lookback=2d&limit=1500",
		"service=s&lookback=custom&start=1700000000000000&end=1700000000000001",
		"service=%zz",
		"service=s&minDuration=-1s",
		"service=s&tags=null&tags={}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > maxFuzzInput {
			t.Skip()
		}
		q, err := api.ParseQuery(raw)
		if err != nil {
			assertRequestError(t, err)
			return
		}
		got, err := parseTraceSearch(q)
		if err != nil {
			assertRequestError(t, err)
			return
		}
		if got.Limit < 0 || got.Limit > traces.MaxLimit || got.Lookback < 0 {
			t.Errorf("limit %d or lookback %s out of range", got.Limit, got.Lookback)
		}
		if got.Service == "" && len(got.TraceIDs) == 0 {
			t.Error("neither service nor trace IDs")
		}
		if !got.StartMax.IsZero() && got.StartMin.After(got.StartMax) {
			t.Errorf("start %v after end %v", got.StartMin, got.StartMax)
		}
		if got.DurationMin < 0 || got.DurationMax < 0 || got.DurationMax != 0 && got.DurationMax < got.DurationMin {
			t.Errorf("bad durations %v..%v", got.DurationMin, got.DurationMax)
		}
		if len(got.Tags) > MaxSearchTags || len(got.TraceIDs) > MaxSearchTraceIDs {
			t.Errorf("%d tags, %d trace IDs beyond the limits", len(got.Tags), len(got.TraceIDs))
		}
		for k := range got.Tags {
			if k == "" {
				t.Error("empty tag key")
			}
		}
		for _, id := range got.TraceIDs {
			if id.IsEmpty() {
				t.Error("zero trace ID")
			}
		}
	})
}

func assertRequestError(t *testing.T, err error) {
	t.Helper()
	var re *api.RequestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a request error", err, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "parameter '") && !strings.HasPrefix(msg, "malformed query string") {
		t.Fatalf("error %q names no parameter", msg)
	}
}

func FuzzParseTraceID(f *testing.F) {
	for _, seed := range []string{"1", "abc", idLegacy, idCheckout, "0" + idCheckout, "", "0", "0x1", "ABCDEF", "é"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzInput {
			t.Skip()
		}
		id, err := api.ParseTraceID(s)
		if err != nil {
			assertRequestError(t, err)
			return
		}
		if len(s) == 0 || len(s) > 32 || id.IsEmpty() {
			t.Fatalf("accepted %q as %v", s, id)
		}
		out := formatTraceID(id)
		if len(out) != 16 && len(out) != 32 {
			t.Fatalf("formatted %q as %q", s, out)
		}
		back, err := api.ParseTraceID(out)
		if err != nil || back != id {
			t.Fatalf("round trip of %q: %q → %v, %v", s, out, back, err)
		}
		if strings.TrimLeft(strings.ToLower(s), "0") != strings.TrimLeft(out, "0") {
			t.Fatalf("%q printed as %q", s, out)
		}
	})
}
