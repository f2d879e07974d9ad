package app

import (
	"io"
	"log/slog"
	"strings"
)

// NewLogger returns the process logger: text or JSON as cfg.Format says
// ("" picks text when terminal is true), at cfg.Level, debug when cfg.Debug.
func NewLogger(cfg LogConfig, w io.Writer, terminal bool) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToLower(cfg.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	if cfg.Debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Format
	if format == "" {
		format = "json"
		if terminal {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
