package consulapi

import (
	"errors"
	"testing"
)

// maxFuzzInput bounds the inputs the fuzzers try, as maxBody bounds a
// request.
const maxFuzzInput = 64 << 10

// FuzzDecodeRegistration checks that any register body either decodes or
// fails with a decode error, never panics, and that a decoded one has
// every check named.
func FuzzDecodeRegistration(f *testing.F) {
	for _, s := range []string{
		`{"Name": "web", "Port": 80, "Check": {"HTTP": "http://127.0.0.1/", "Interval": "10s"}}`,
		`{"ID": "a", "Name": "b", "Checks": [{"TTL": "5s"}, {"TCP": "h:1", "Interval": 1000000000}]}`,
		`{"Name": "x", "Meta": {"k": "v"}, "Tags": ["t"]}`,
		`{"Name": "x", "Check": {"Args": ["true"]}}`,
		`{"Name": 1}`,
		`[]`,
		`{"Name": "x"} trailing`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > maxFuzzInput {
			return
		}
		reg, err := decodeRegistration(body)
		if err != nil {
			if !errors.Is(err, errDecode) {
				t.Fatalf("error %v is not a decode error", err)
			}
			return
		}
		for _, c := range reg.Checks {
			if c.ID == "" || c.Name == "" {
				t.Fatalf("check without ID or name: %+v", c)
			}
		}
	})
}

// FuzzParseFilter checks that the filter parser accepts or refuses any
// input without panicking, and that what it accepts evaluates.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`Service.Meta.env == "prod"`,
		`"blue" in Service.Tags and not (Checks.Status != passing)`,
		`Service.Tags is not empty or Service.ID contains "a"`,
		`((((`,
		`Service.Port > 1`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzInput {
			return
		}
		e, err := parseFilter(s, entryKnown)
		if err != nil {
			if !errors.Is(err, errFilter) {
				t.Fatalf("error %v is not a filter error", err)
			}
			return
		}
		entry := &serviceEntry{Service: agentService{ID: "a", Tags: []string{"blue"}, Meta: map[string]string{"env": "prod"}},
			Checks: []healthCheck{{Status: "passing"}}}
		_ = e.eval(entryFields(entry))
	})
}
