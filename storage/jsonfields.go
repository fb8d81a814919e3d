package storage

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// EachJSONBodyField calls fn with the string form of every top-level field
// of s when s is a JSON object (strings as they are, other values as their
// JSON text), in the order they appear, and reports whether s was one. A
// key that appears twice is passed twice; JSONBodyFields keeps the last,
// as encoding/json does.
//
// It accepts exactly what encoding/json accepts (json.Valid checks the
// whole text first) and decodes keys and string values as encoding/json
// does, but builds no map: only a string holding an escape or invalid
// UTF-8 goes through encoding/json.
func EachJSONBodyField(s string, fn func(key, value string)) bool {
	t := strings.TrimSpace(s)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' || !json.Valid([]byte(t)) {
		return false
	}
	i := skipJSONSpace(t, 1)
	if t[i] == '}' {
		return true
	}
	for {
		// t is valid JSON: a key, a colon, a value, then a comma or the
		// closing brace.
		end := jsonStringEnd(t, i)
		key := jsonString(t[i:end])
		i = skipJSONSpace(t, end)
		i = skipJSONSpace(t, i+1) // the colon
		end = jsonValueEnd(t, i)
		if t[i] == '"' {
			fn(key, jsonString(t[i:end]))
		} else {
			fn(key, t[i:end])
		}
		i = skipJSONSpace(t, end)
		if t[i] == '}' {
			return true
		}
		i = skipJSONSpace(t, i+1) // the comma
	}
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipJSONSpace(t string, i int) int {
	for i < len(t) && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r') {
		i++
	}
	return i
}

// jsonStringEnd returns the index just past the string literal of valid
// JSON that starts at t[i] (a quote).
func jsonStringEnd(t string, i int) int {
	for i++; ; i++ {
		switch t[i] {
		case '\\':
			i++ // the escaped byte; \uXXXX's digits are no quotes
		case '"':
			return i + 1
		}
	}
}

// jsonValueEnd returns the index just past the value of valid JSON that
// starts at t[i].
func jsonValueEnd(t string, i int) int {
	switch t[i] {
	case '"':
		return jsonStringEnd(t, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch t[i] {
			case '"':
				i = jsonStringEnd(t, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	default: // a number, true, false or null
		for i < len(t) && !strings.ContainsRune(",}] \t\n\r", rune(t[i])) {
			i++
		}
		return i
	}
}

// jsonString decodes a string literal of valid JSON (quotes included) as
// encoding/json does.
func jsonString(lit string) string {
	body := lit[1 : len(lit)-1]
	if !strings.ContainsRune(body, '\\') && utf8.ValidString(body) {
		return body
	}
	var out string
	if err := json.Unmarshal([]byte(lit), &out); err != nil {
		return body // not reached: lit is valid JSON
	}
	return out
}
