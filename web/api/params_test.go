package api

import (
	"net/url"
	"strings"
	"testing"
)

func TestCheckParams(t *testing.T) {
	long := strings.Repeat("x", MaxParamBytes+1)
	tests := []struct {
		name  string
		q     url.Values
		limit func(string) int
		want  string // the message in the Jaeger envelope; "" for none
	}{
		{"clean", url.Values{"service": {"checkout", "用户"}, "q": {""}}, AnyParam, ""},
		{"nul value", url.Values{"service": {"a\x00"}}, AnyParam, "parameter 'service' contains a NUL byte"},
		{"invalid utf-8 in a repeated value", url.Values{"tag": {"a:b", "c:\xff"}}, AnyParam, "parameter 'tag' is not valid UTF-8"},
		{"too long", url.Values{"operation": {long}}, AnyParam, "parameter 'operation' is 4097 bytes, over the limit of 4096"},
		{"at the limit", url.Values{"operation": {long[1:]}}, AnyParam, ""},
		{"own limit", url.Values{"query": {long}}, func(string) int { return 2 * MaxParamBytes }, ""},
		{"nul name", url.Values{"a\x00b": {"v"}}, AnyParam, `parameter 'a\x00b' has a name that contains a NUL byte`},
		{"long name", url.Values{long: {"v"}}, AnyParam, "parameter '" + strings.Repeat("x", 64) + "…' has a name that is 4097 bytes, over the limit of 4096"},
		{"first in name order", url.Values{"b": {"\x00"}, "a": {"\xff"}, "c": {"\x00"}}, AnyParam, "parameter 'a' is not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 10 { // map order must not matter
				b := CheckParams(tc.q, tc.limit)
				got := ""
				if b != nil {
					got = b.RequestError().Error()
				}
				if got != tc.want {
					t.Fatalf("checkParams: %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestDisplayParam(t *testing.T) {
	tests := []struct{ in, want string }{
		{"service", "service"},
		{"attr.用户", "attr.用户"},
		{"a\x00b", `a\x00b`},
		{"\xff", `\xff`},
		{"tab\there", `tab\there`},
		{strings.Repeat("é", 40), strings.Repeat("é", 32) + "…"},
	}
	for _, tc := range tests {
		if got := DisplayParam(tc.in); got != tc.want {
			t.Errorf("DisplayParam(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
