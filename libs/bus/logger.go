package bus

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// levelTrace is Watermill's per-message level, below slog.LevelDebug.
const levelTrace = slog.LevelDebug - 4

// slogAdapter adapts a *slog.Logger for Watermill. Watermill logs each subscription's start
// and stop, and for GoChannel every message nobody subscribed to, at Info: those are Debug
// here. Unlike watermill.NewSlogLogger it builds no attributes for a disabled level, which
// matters on the per-message Trace path.
type slogAdapter struct{ l *slog.Logger }

func newSlogAdapter(l *slog.Logger) watermill.LoggerAdapter { return slogAdapter{l} }

func (a slogAdapter) Error(msg string, err error, fields watermill.LogFields) {
	a.log(slog.LevelError, msg, fields, slog.Any("err", err))
}
func (a slogAdapter) Info(msg string, fields watermill.LogFields) {
	a.log(slog.LevelDebug, msg, fields)
}
func (a slogAdapter) Debug(msg string, fields watermill.LogFields) {
	a.log(slog.LevelDebug, msg, fields)
}
func (a slogAdapter) Trace(msg string, fields watermill.LogFields) {
	a.log(levelTrace, msg, fields)
}
func (a slogAdapter) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return slogAdapter{a.l.With(attrs(fields)...)}
}

func (a slogAdapter) log(level slog.Level, msg string, fields watermill.LogFields, extra ...slog.Attr) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	args := attrs(fields)
	for _, e := range extra {
		args = append(args, e)
	}
	a.l.Log(ctx, level, "watermill: "+msg, args...)
}

func attrs(fields watermill.LogFields) []any {
	out := make([]any, 0, len(fields))
	for k, v := range fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}
