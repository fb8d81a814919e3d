package storage

import (
	"strings"
	"time"
	"unicode"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/storage/semconv"
)

// LogQuery selects log records: a record matches when it meets every set
// field. Zero values mean "any".
type LogQuery struct {
	Service string
	// MinSeverity keeps records whose severity_number is at least this
	// (1 TRACE .. 24 FATAL4); 0 keeps every record, unspecified included.
	MinSeverity int32
	// Text holds words and phrases that must all occur in the body,
	// compared case-insensitively token by token (a CJK character is a
	// token of its own, so a Chinese word matches as the sequence of its
	// characters). See TextMatches.
	Text    []string
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
	// Attributes are key=value pairs compared with the string form of a
	// record attribute, of a top-level field of a map body or of a body
	// that is a JSON object, or of a resource attribute, under the key or
	// an alias of it (see AttrMatches).
	Attributes map[string]string
	// Start and End bound the record time, inclusive. A store needs
	// them set: query/logs settles their defaults, the store applies
	// none.
	Start, End time.Time
	// Limit is the maximum number of records; a store needs it set, as
	// Start and End.
	Limit int
	// After continues a previous search: only records strictly older than
	// this position (in the newest-first order) are returned.
	After *LogCursor
}

// LogCursor is a position in the newest-first order of log records: their
// time and, among records of the same microsecond, their id (descending).
type LogCursor struct {
	Time time.Time
	ID   int64
}

// LogRecord is one stored (or just committed) log record with its context.
type LogRecord struct {
	// ID is the record's storage id; zero for records that were not read
	// back from storage (live tail).
	ID       int64
	Service  string
	Resource pcommon.Resource
	Scope    pcommon.InstrumentationScope
	Record   plog.LogRecord
}

// Cursor returns the position of r for LogQuery.After.
func (r LogRecord) Cursor() LogCursor {
	return LogCursor{Time: RecordTime(r.Record), ID: r.ID}
}

// LogPage is one page of a log search, newest first. Next is set when more
// records may follow; pass it as LogQuery.After to read them.
type LogPage struct {
	Records []LogRecord
	Next    *LogCursor
}

// RecordTime is the time a record is filed under: its timestamp, or its
// observed timestamp when it has none, truncated to microseconds as stored.
func RecordTime(lr plog.LogRecord) time.Time {
	ts := lr.Timestamp()
	if ts == 0 {
		ts = lr.ObservedTimestamp()
	}
	return ts.AsTime().Truncate(time.Microsecond)
}

// Matches reports whether r meets every field of q except Start, End,
// Limit and After. It is what the live tail applies to committed records;
// searches apply the same rules in SQL and Go.
func (q LogQuery) Matches(r LogRecord) bool {
	lr := r.Record
	switch {
	case q.Service != "" && r.Service != q.Service,
		int32(lr.SeverityNumber()) < q.MinSeverity,
		!q.TraceID.IsEmpty() && lr.TraceID() != q.TraceID,
		!q.SpanID.IsEmpty() && lr.SpanID() != q.SpanID:
		return false
	}
	for k, v := range q.Attributes {
		if !AttrMatches(lr, r.Resource, k, v) {
			return false
		}
	}
	if len(q.Text) == 0 {
		return true
	}
	body := BodyText(lr.Body())
	for _, t := range q.Text {
		if !TextMatches(body, t) {
			return false
		}
	}
	return true
}

// BodyText is the searchable text of a body: a string body as it is, any
// other body as its JSON form (pdata's AsString).
func BodyText(v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	if v.Type() == pcommon.ValueTypeEmpty {
		return ""
	}
	return v.AsString()
}

// AttrMatches is FieldMatches under key or one of the names the semantic
// conventions gave it (semconv.Aliases) that hold whatever the kind of
// call: a record has no span kind, so the aliases of one side only
// (net.peer.name ↔ server.address, net.host.name ↔ server.address) are
// left out.
func AttrMatches(lr plog.LogRecord, res pcommon.Resource, key, want string) bool {
	if FieldMatches(lr, res, key, want) {
		return true
	}
	for _, a := range semconv.Aliases(key) {
		if a.Side == semconv.AnySide && FieldMatches(lr, res, a.Key, want) {
			return true
		}
	}
	return false
}

// FieldMatches reports whether key has the string form want among the
// record's attributes, the top-level fields of its body (a map, or a
// string holding a JSON object), or the resource attributes.
func FieldMatches(lr plog.LogRecord, res pcommon.Resource, key, want string) bool {
	if v, ok := lr.Attributes().Get(key); ok && v.AsString() == want {
		return true
	}
	if v, ok := BodyField(lr.Body(), key); ok && v == want {
		return true
	}
	if v, ok := res.Attributes().Get(key); ok && v.AsString() == want {
		return true
	}
	return false
}

// BodyField returns the string form of the top-level field key of a map
// body, or of a string body holding a JSON object (as winston and most
// JSON loggers write lines).
func BodyField(body pcommon.Value, key string) (string, bool) {
	switch body.Type() {
	case pcommon.ValueTypeMap:
		if v, ok := body.Map().Get(key); ok {
			return v.AsString(), true
		}
	case pcommon.ValueTypeStr:
		fields := JSONBodyFields(body.Str())
		v, ok := fields[key]
		return v, ok
	}
	return "", false
}

// JSONBodyFields parses s as a JSON object and returns the string form of
// its top-level fields (strings as they are, other values as JSON). It
// returns nil when s is not a JSON object.
func JSONBodyFields(s string) map[string]string {
	var out map[string]string
	ok := EachJSONBodyField(s, func(k, v string) {
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	})
	if ok && out == nil {
		out = map[string]string{}
	}
	return out
}

// TextMatches reports whether phrase occurs in text: both are split into
// lower-case tokens (runs of letters and digits, each CJK character a token
// of its own) and the phrase's tokens must appear consecutively. A phrase
// without tokens matches everything.
func TextMatches(text, phrase string) bool {
	want := Tokens(phrase)
	if len(want) == 0 {
		return true
	}
	have := Tokens(text)
	for i := 0; i+len(want) <= len(have); i++ {
		match := true
		for j := range want {
			if have[i+j] != want[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// Tokens splits s into lower-case search tokens: runs of letters and
// digits, with every CJK character (Han, Hiragana, Katakana, Hangul) a
// token of its own.
func Tokens(s string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case IsCJK(r):
			flush()
			out = append(out, string(r))
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			cur.WriteRune(unicode.ToLower(r))
		default:
			flush()
		}
	}
	flush()
	return out
}

// IsCJK reports whether r is a CJK character (Han, Hiragana, Katakana,
// Hangul), which Tokens makes a token of its own.
func IsCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// LogBucket is one bar of a log volume histogram: the records whose time
// falls in [Start, Start+step).
type LogBucket struct {
	Start time.Time
	Count int64
}
