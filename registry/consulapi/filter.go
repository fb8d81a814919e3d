package consulapi

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// The filter query parameter: a subset of Consul's filter language
// (go-bexpr). Supported:
//
//	<selector> == <value>          <selector> != <value>
//	<value> in <selector>          <value> not in <selector>
//	<selector> contains <value>    <selector> not contains <value>
//	<selector> is empty            <selector> is not empty
//	<expr> and <expr>   <expr> or <expr>   not <expr>   ( <expr> )
//
// Values are double-quoted strings (with \" and \\ escapes) or bare words
// (passing, 8080). A selector is a dotted path of the endpoint's result
// (Service.Meta.version, Service.Tags, Checks.Status, ServiceTags…). A
// selector that reaches several values (tags, the checks of an entry)
// matches == when any value is equal, and "in" tests membership; "in" on
// a single string tests for a substring, and "in" on a map (Meta) for a
// key. Anything else is refused with a 400 naming what was not
// understood: regular expressions (matches), numeric comparisons and
// bracketed map keys are not supported.

// errFilter is wrapped by every filter parse error.
var errFilter = errors.New("failed to create boolean expression evaluator")

// maxFilterLen bounds a filter expression.
const maxFilterLen = 4096

// fields resolves a selector path of one result item: its values, whether
// the selector names a collection (list or map) and whether it exists.
type fields func(path string) (vals []string, collection, ok bool)

// expr is a parsed filter.
type expr interface {
	eval(f fields) bool
}

type andExpr struct{ l, r expr }
type orExpr struct{ l, r expr }
type notExpr struct{ e expr }

// matchExpr is one comparison.
type matchExpr struct {
	op       string // "==", "!=", "in", "not in", "empty", "not empty"
	selector string
	value    string
}

func (e andExpr) eval(f fields) bool { return e.l.eval(f) && e.r.eval(f) }
func (e orExpr) eval(f fields) bool  { return e.l.eval(f) || e.r.eval(f) }
func (e notExpr) eval(f fields) bool { return !e.e.eval(f) }

func (e matchExpr) eval(f fields) bool {
	vals, coll, _ := f(e.selector)
	switch e.op {
	case "==":
		for _, v := range vals {
			if v == e.value {
				return true
			}
		}
		return false
	case "!=":
		for _, v := range vals {
			if v == e.value {
				return false
			}
		}
		return true
	case "in", "not in":
		found := false
		if coll {
			for _, v := range vals {
				found = found || v == e.value
			}
		} else {
			for _, v := range vals {
				found = found || strings.Contains(v, e.value)
			}
		}
		return found == (e.op == "in")
	case "empty", "not empty":
		empty := true
		for _, v := range vals {
			empty = empty && v == ""
		}
		return empty == (e.op == "empty")
	}
	return false
}

// parseFilter parses a filter; known checks that each selector exists for
// the endpoint.
func parseFilter(s string, known func(path string) bool) (expr, error) {
	if len(s) > maxFilterLen {
		return nil, fmt.Errorf("%w: filter longer than %d bytes", errFilter, maxFilterLen)
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, known: known}
	e, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("%w: unexpected %q", errFilter, p.toks[p.pos].text)
	}
	return e, nil
}

type token struct {
	text   string
	quoted bool
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
		case '(', ')':
			toks = append(toks, token{text: string(c)})
			i++
		case '=', '!':
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, token{text: s[i : i+2]})
				i += 2
				continue
			}
			return nil, fmt.Errorf("%w: unexpected %q at %d", errFilter, c, i)
		case '"', '`':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && c == '"' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("%w: unterminated string at %d", errFilter, i)
			}
			toks = append(toks, token{text: b.String(), quoted: true})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()=!\"`", rune(s[j])) {
				j++
			}
			word := s[i:j]
			for _, r := range word {
				if r != '.' && r != '_' && r != '-' && r != ':' && r != '/' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					return nil, fmt.Errorf("%w: unexpected %q in %q", errFilter, r, word)
				}
			}
			toks = append(toks, token{text: word})
			i = j
		}
	}
	return toks, nil
}

type parser struct {
	toks  []token
	pos   int
	known func(string) bool
}

// maxDepth bounds nesting, so that a hostile filter cannot exhaust the
// stack.
const maxDepth = 32

func (p *parser) peek(word string) bool {
	return p.pos < len(p.toks) && !p.toks[p.pos].quoted && p.toks[p.pos].text == word
}

func (p *parser) next() (token, error) {
	if p.pos >= len(p.toks) {
		return token{}, fmt.Errorf("%w: unexpected end of filter", errFilter)
	}
	t := p.toks[p.pos]
	p.pos++
	return t, nil
}

func (p *parser) or(depth int) (expr, error) {
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.peek("or") {
		p.pos++
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = orExpr{l, r}
	}
	return l, nil
}

func (p *parser) and(depth int) (expr, error) {
	l, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.peek("and") {
		p.pos++
		r, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
	return l, nil
}

func (p *parser) unary(depth int) (expr, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested too deep", errFilter)
	}
	if p.peek("not") {
		p.pos++
		e, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	}
	if p.peek("(") {
		p.pos++
		e, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if !p.peek(")") {
			return nil, fmt.Errorf("%w: missing )", errFilter)
		}
		p.pos++
		return e, nil
	}
	return p.match()
}

func (p *parser) match() (expr, error) {
	first, err := p.next()
	if err != nil {
		return nil, err
	}
	// <value> [not] in <selector>
	if p.peek("in") || (p.peek("not") && p.pos+1 < len(p.toks) && p.toks[p.pos+1].text == "in" && !p.toks[p.pos+1].quoted) {
		op := "in"
		if p.peek("not") {
			op = "not in"
			p.pos++
		}
		p.pos++
		sel, err := p.selector()
		if err != nil {
			return nil, err
		}
		return matchExpr{op: op, selector: sel, value: first.text}, nil
	}
	if first.quoted {
		return nil, fmt.Errorf("%w: expected a selector, got %q", errFilter, first.text)
	}
	p.pos--
	sel, err := p.selector()
	if err != nil {
		return nil, err
	}
	op, err := p.next()
	if err != nil {
		return nil, err
	}
	switch {
	case op.quoted:
	case op.text == "==" || op.text == "!=":
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		return matchExpr{op: op.text, selector: sel, value: v}, nil
	case op.text == "contains":
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		return matchExpr{op: "in", selector: sel, value: v}, nil
	case op.text == "not" && p.peek("contains"):
		p.pos++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		return matchExpr{op: "not in", selector: sel, value: v}, nil
	case op.text == "is":
		neg := p.peek("not")
		if neg {
			p.pos++
		}
		if !p.peek("empty") {
			return nil, fmt.Errorf("%w: expected empty after is", errFilter)
		}
		p.pos++
		if neg {
			return matchExpr{op: "not empty", selector: sel}, nil
		}
		return matchExpr{op: "empty", selector: sel}, nil
	}
	return nil, fmt.Errorf("%w: unsupported operator %q (supported: ==, !=, in, not in, contains, not contains, is empty, is not empty)", errFilter, op.text)
}

func (p *parser) selector() (string, error) {
	t, err := p.next()
	if err != nil {
		return "", err
	}
	if t.quoted || !p.known(t.text) {
		return "", fmt.Errorf("%w: unknown selector %q", errFilter, t.text)
	}
	return t.text, nil
}

func (p *parser) value() (string, error) {
	t, err := p.next()
	if err != nil {
		return "", err
	}
	if !t.quoted && (t.text == "(" || t.text == ")" || t.text == "==" || t.text == "!=") {
		return "", fmt.Errorf("%w: expected a value, got %q", errFilter, t.text)
	}
	return t.text, nil
}
