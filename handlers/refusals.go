package handlers

import (
	"log/slog"

	"github.com/fizz-server/fizz/modules/server"
)

// refusals logs why sockets are refused, each reason and value at most
// once per server.RefusalEvery.
type refusals struct{ *server.Refusals }

func newRefusals() *refusals { return &refusals{server.NewRefusals()} }

// log logs a refusal at warn level unless the same reason and value was
// logged within server.RefusalEvery.
func (r *refusals) log(log *slog.Logger, reason, value string, attrs ...any) {
	if r.Due(reason, value) {
		log.Warn("socket refused: "+reason, append([]any{"value", value}, attrs...)...)
	}
}
