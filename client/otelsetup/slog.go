package otelsetup

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
)

// NewSlogHandler returns a slog.Handler that emits records as OTel log
// records through lp's logger named scope. Records keep the trace context of
// the context they are logged with (use the …Context methods).
func NewSlogHandler(lp otellog.LoggerProvider, scope string) slog.Handler {
	return &slogHandler{logger: lp.Logger(scope)}
}

type slogHandler struct {
	logger otellog.Logger
	attrs  []attribute.KeyValue
	group  string
}

func (h *slogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.logger.Enabled(ctx, otellog.EnabledParameters{Severity: severity(level)})
}

func (h *slogHandler) Handle(ctx context.Context, r slog.Record) error {
	var rec otellog.Record
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	rec.SetTimestamp(ts)
	rec.SetObservedTimestamp(time.Now())
	rec.SetSeverity(severity(r.Level))
	rec.SetSeverityText(r.Level.String())
	rec.SetBody(attribute.StringValue(r.Message))
	rec.AddAttributes(h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		rec.AddAttributes(h.convert(h.group, a)...)
		return true
	})
	h.logger.Emit(ctx, rec)
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	nh := *h
	nh.attrs = append([]attribute.KeyValue(nil), h.attrs...)
	for _, a := range attrs {
		nh.attrs = append(nh.attrs, h.convert(h.group, a)...)
	}
	return &nh
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	nh := *h
	nh.group = h.group + name + "."
	return &nh
}

// convert flattens a slog attribute into dotted OTel attributes.
func (h *slogHandler) convert(prefix string, a slog.Attr) []attribute.KeyValue {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return nil
	}
	key := prefix + a.Key
	switch a.Value.Kind() {
	case slog.KindGroup:
		var out []attribute.KeyValue
		p := key + "."
		if a.Key == "" {
			p = prefix
		}
		for _, g := range a.Value.Group() {
			out = append(out, h.convert(p, g)...)
		}
		return out
	case slog.KindBool:
		return []attribute.KeyValue{attribute.Bool(key, a.Value.Bool())}
	case slog.KindInt64:
		return []attribute.KeyValue{attribute.Int64(key, a.Value.Int64())}
	case slog.KindUint64:
		return []attribute.KeyValue{attribute.Int64(key, int64(a.Value.Uint64()))}
	case slog.KindFloat64:
		return []attribute.KeyValue{attribute.Float64(key, a.Value.Float64())}
	case slog.KindDuration:
		return []attribute.KeyValue{attribute.Float64(key, a.Value.Duration().Seconds())}
	case slog.KindTime:
		return []attribute.KeyValue{attribute.String(key, a.Value.Time().Format(time.RFC3339Nano))}
	}
	if err, ok := a.Value.Any().(error); ok {
		return []attribute.KeyValue{attribute.String(key, err.Error())}
	}
	return []attribute.KeyValue{attribute.String(key, a.Value.String())}
}

func severity(l slog.Level) otellog.Severity {
	switch {
	case l >= slog.LevelError:
		return otellog.SeverityError
	case l >= slog.LevelWarn:
		return otellog.SeverityWarn
	case l >= slog.LevelInfo:
		return otellog.SeverityInfo
	}
	return otellog.SeverityDebug
}

// Fanout returns a handler that passes each record to every handler enabled
// for its level.
func Fanout(handlers ...slog.Handler) slog.Handler { return fanout(handlers) }

type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
