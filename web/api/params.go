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
	// API's 'query' and 'match[]' parameters: as much as a form body may
	// carry (dashboards generate long expressions). The PromQL engine
	// bounds 'query' further with its own setting.
	MaxExprBytes = maxPromFormBytes
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

// checkParamValue reports why no API accepts v as the value of a
// parameter limited to limit bytes: too long, a NUL byte, or invalid
// UTF-8. It returns nil when v is acceptable.
func checkParamValue(v string, limit int) error {
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

// badParam is a parameter that checkParams refused. name is as the client
// sent it (use displayParam to show it); err says what is wrong, with the
// name itself when inName is set.
type badParam struct {
	name   string
	inName bool
	err    error
}

// reason is the text that follows "parameter 'name' " in a message.
func (b *badParam) reason() error {
	if b.inName {
		return fmt.Errorf("has a name that %w", b.err)
	}
	return b.err
}

// requestError is b in the error type of the Jaeger-envelope APIs.
func (b *badParam) requestError() error {
	return paramError(displayParam(b.name), b.reason().Error(), nil)
}

// promError is b in the error type of the Prometheus API.
func (b *badParam) promError() error {
	return &promParamError{param: displayParam(b.name), err: b.reason()}
}

// checkParams checks the name and every value of each parameter in q: a
// name must pass checkParamValue with MaxParamBytes, a value with
// limit(name). It reports the first offending parameter in name order, so
// that the answer does not depend on map order, or nil.
func checkParams(q url.Values, limit func(name string) int) *badParam {
	var first *badParam
	for name, vals := range q {
		if first != nil && name >= first.name {
			continue
		}
		if err := checkParamValue(name, MaxParamBytes); err != nil {
			first = &badParam{name: name, inName: true, err: err}
			continue
		}
		lim := limit(name)
		for _, v := range vals {
			if err := checkParamValue(v, lim); err != nil {
				first = &badParam{name: name, err: err}
				break
			}
		}
	}
	return first
}

// anyParam is the limit function of APIs whose parameters are all
// bounded by MaxParamBytes.
func anyParam(string) int { return MaxParamBytes }

// displayParam renders a parameter name for an error message: unchanged
// when it is short, valid UTF-8 and printable, else truncated to 64 bytes
// with its NUL, control and invalid bytes escaped as in Go strings.
func displayParam(name string) string {
	printable := strings.IndexFunc(name, func(r rune) bool { return !strconv.IsPrint(r) }) < 0
	if len(name) <= 64 && utf8.ValidString(name) && printable {
		return name
	}
	q := strconv.Quote(truncate(name, 64))
	return q[1 : len(q)-1]
}
