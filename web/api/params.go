package api

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits every API applies to every query, form and path parameter before
// it looks at what a value means. They are part of the API contract: a
// parameter beyond them is answered 400 naming the parameter, in the
// API's own error envelope, and never reaches storage (PostgreSQL text
// cannot hold a NUL byte or invalid UTF-8).
const (
	// MaxParamBytes is the largest value of one parameter, and the
	// longest parameter name.
	MaxParamBytes = 4 << 10
	// MaxExprBytes is the largest PromQL expression of the Prometheus
	// API's 'query' and 'match[]' parameters, and the largest form body
	// that API reads (dashboards generate long expressions). The PromQL
	// engine bounds 'query' further with its own setting.
	MaxExprBytes = 1 << 20
)

// Reasons a parameter is refused whatever the API; each reads after
// "parameter 'name' ".
var (
	errParamNUL  = errors.New("contains a NUL byte")
	errParamUTF8 = errors.New("is not valid UTF-8")
)

// paramTooLongError is a value over its limit.
type paramTooLongError struct{ n, limit int }

func (e *paramTooLongError) Error() string {
	return fmt.Sprintf("is %d bytes, over the limit of %d", e.n, e.limit)
}

// CheckValue reports why no API accepts v as the value of a parameter
// limited to limit bytes: too long, a NUL byte, or invalid UTF-8. It
// returns nil when v is acceptable; the error's text reads after
// "parameter 'name' ".
func CheckValue(v string, limit int) error {
	if len(v) > limit {
		return &paramTooLongError{n: len(v), limit: limit}
	}
	if strings.IndexByte(v, 0) >= 0 {
		return errParamNUL
	}
	if !utf8.ValidString(v) {
		return errParamUTF8
	}
	return nil
}

// BadParam is a parameter that CheckParams refused. Each API reports it
// in its own error type, from Param and Reason.
type BadParam struct {
	name   string // as the client sent it
	inName bool   // err is about the name, not a value
	err    error
}

// Param is the parameter's name as an error message shows it
// (DisplayParam).
func (b *BadParam) Param() string { return DisplayParam(b.name) }

// Reason says what is wrong; its text reads after "parameter 'name' ".
func (b *BadParam) Reason() error {
	if b.inName {
		return fmt.Errorf("has a name that %w", b.err)
	}
	return b.err
}

// RequestError is b as a [RequestError], the error type of the APIs that
// answer in the Jaeger envelope.
func (b *BadParam) RequestError() error {
	return ParamError(b.Param(), b.Reason().Error(), nil)
}

// CheckParams checks the name and every value of each parameter in q: a
// name must pass CheckValue with MaxParamBytes, a value with limit(name).
// It reports the first offending parameter in name order, so that the
// answer does not depend on map order, or nil.
func CheckParams(q url.Values, limit func(name string) int) *BadParam {
	var first *BadParam
	for name, vals := range q {
		if first != nil && name >= first.name {
			continue
		}
		if err := CheckValue(name, MaxParamBytes); err != nil {
			first = &BadParam{name: name, inName: true, err: err}
			continue
		}
		lim := limit(name)
		for _, v := range vals {
			if err := CheckValue(v, lim); err != nil {
				first = &BadParam{name: name, err: err}
				break
			}
		}
	}
	return first
}

// AnyParam is the limit function of CheckParams for APIs whose parameters
// are all bounded by MaxParamBytes.
func AnyParam(string) int { return MaxParamBytes }

// DisplayParam renders a parameter name for an error message: unchanged
// when it is short, valid UTF-8 and printable, else truncated to 64 bytes
// with its NUL, control and invalid bytes escaped as in Go strings.
func DisplayParam(name string) string {
	printable := strings.IndexFunc(name, func(r rune) bool { return !strconv.IsPrint(r) }) < 0
	if len(name) <= 64 && utf8.ValidString(name) && printable {
		return name
	}
	q := strconv.Quote(Truncate(name, 64))
	return q[1 : len(q)-1]
}

// Truncate returns s cut to n bytes with "…" appended when it is longer,
// for quoting client input in an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
