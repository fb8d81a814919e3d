package ingest

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// ReasonInvalidSeverity is the rejection reason of a log record whose
// severity_number is outside OTLP's range 0..24.
const ReasonInvalidSeverity = "invalid_severity"

// maxSeverityNumber is SEVERITY_NUMBER_FATAL4.
const maxSeverityNumber = 24

// ValidateLogsReport removes from ld, in place, every log record that
// Vigil cannot or should not store, and reports how many it removed, why,
// and where (paths such as "resource_logs[0].scope_logs[1].log_records[3]:
// body contains a NUL byte").
//
// A record is invalid when a string it carries (severity_text, event_name,
// a string body or any string nested in a structured body, attribute keys
// and values) is not valid UTF-8 or longer than lim.MaxValueBytes; when its
// string body or severity_text contains a NUL byte (PostgreSQL text cannot
// hold one); when it has more attributes than lim.MaxAttributes or values
// nested deeper than MaxAttributeValueDepth; when its severity_number is
// outside 0..24; or when its time (its timestamp, else its observed
// timestamp) is before now-MaxAge or after now+MaxFutureSkew. Resources and
// scopes are checked as for spans. A record with neither timestamp gets
// the current time as its observed timestamp, as the OpenTelemetry
// Collector does on receipt.
//
// Resource and scope entries left without records are removed too. Zero
// fields of lim take their defaults. ld must not be used concurrently.
func ValidateLogsReport(ld plog.Logs, lim Limits) ValidationReport {
	v := newValidator(lim)
	v.one, v.many = "log record", "log records"
	now := pcommon.NewTimestampFromTime(v.lim.Now())
	ri := -1
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		ri++
		if p := v.checkResourceAttrs(rl.SchemaUrl(), rl.Resource()); p.reason != "" {
			v.rejectGroup(p, countLogs(rl.ScopeLogs()), func() string { return fmt.Sprintf("resource_logs[%d]", ri) })
			return true
		}
		si := -1
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			si++
			if p := v.checkScopeOf(sl.SchemaUrl(), sl.Scope()); p.reason != "" {
				v.rejectGroup(p, sl.LogRecords().Len(), func() string {
					return fmt.Sprintf("resource_logs[%d].scope_logs[%d]", ri, si)
				})
				return true
			}
			li := -1
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				li++
				if lr.Timestamp() == 0 && lr.ObservedTimestamp() == 0 {
					lr.SetObservedTimestamp(now)
				}
				p := v.checkLogRecord(lr)
				if p.reason == "" {
					return false
				}
				v.reject(p.reason, 1, func() string {
					return fmt.Sprintf("resource_logs[%d].scope_logs[%d].log_records[%d]: %s", ri, si, li, p.detail)
				})
				return true
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
	return v.report()
}

func countLogs(sls plog.ScopeLogsSlice) int {
	n := 0
	for i := 0; i < sls.Len(); i++ {
		n += sls.At(i).LogRecords().Len()
	}
	return n
}

// checkResourceAttrs checks a resource as checkResource does for spans.
func (v *validator) checkResourceAttrs(schemaURL string, res pcommon.Resource) problem {
	if !utf8.ValidString(schemaURL) {
		return problem{ReasonInvalidUTF8, "schema_url is not valid UTF-8"}
	}
	attrs := res.Attributes()
	if p := v.checkAttributes(attrs); p.reason != "" {
		p.detail = "resource." + p.detail
		return p
	}
	if sn, found := attrs.Get("service.name"); found && sn.Type() == pcommon.ValueTypeStr && strings.IndexByte(sn.Str(), 0) >= 0 {
		return problem{ReasonNULByte, `resource.attributes["service.name"] contains a NUL byte`}
	}
	return problem{}
}

// checkScopeOf checks an instrumentation scope as checkScope does for
// spans.
func (v *validator) checkScopeOf(schemaURL string, sc pcommon.InstrumentationScope) problem {
	switch {
	case !utf8.ValidString(schemaURL):
		return problem{ReasonInvalidUTF8, "schema_url is not valid UTF-8"}
	case !utf8.ValidString(sc.Name()):
		return problem{ReasonInvalidUTF8, "scope.name is not valid UTF-8"}
	case !utf8.ValidString(sc.Version()):
		return problem{ReasonInvalidUTF8, "scope.version is not valid UTF-8"}
	}
	p := v.checkAttributes(sc.Attributes())
	if p.reason != "" {
		p.detail = "scope." + p.detail
	}
	return p
}

func (v *validator) checkLogRecord(lr plog.LogRecord) problem {
	if n := lr.SeverityNumber(); n < 0 || n > maxSeverityNumber {
		return problem{ReasonInvalidSeverity, fmt.Sprintf("severity_number %d is outside 0..%d", n, maxSeverityNumber)}
	}
	t := uint64(lr.Timestamp())
	field := "time_unix_nano"
	if t == 0 {
		t, field = uint64(lr.ObservedTimestamp()), "observed_time_unix_nano"
	}
	if t < v.minStart {
		return problem{ReasonTooOld, fmt.Sprintf("%s %s is older than the maximum age of %s", field, formatNanos(t), v.lim.MaxAge)}
	}
	if t > v.maxStart {
		return problem{ReasonInFuture, fmt.Sprintf("%s %s is more than %s in the future", field, formatNanos(t), v.lim.MaxFutureSkew)}
	}
	st := lr.SeverityText()
	switch {
	case !utf8.ValidString(st):
		return problem{ReasonInvalidUTF8, "severity_text is not valid UTF-8"}
	case strings.IndexByte(st, 0) >= 0:
		return problem{ReasonNULByte, "severity_text contains a NUL byte"}
	case v.lim.MaxValueBytes > 0 && len(st) > v.lim.MaxValueBytes:
		return problem{ReasonValueTooLong, fmt.Sprintf("severity_text is %d bytes, over the limit of %d", len(st), v.lim.MaxValueBytes)}
	case !utf8.ValidString(lr.EventName()):
		return problem{ReasonInvalidUTF8, "event_name is not valid UTF-8"}
	}
	body := lr.Body()
	if p := v.checkValue(body, 1); p.reason != "" {
		p.detail = "body" + p.detail
		return p
	}
	if body.Type() == pcommon.ValueTypeStr && strings.IndexByte(body.Str(), 0) >= 0 {
		return problem{ReasonNULByte, "body contains a NUL byte"}
	}
	return v.checkAttributes(lr.Attributes())
}
