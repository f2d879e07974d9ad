package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// KindTerminate is the envelope kind that closes a user's sockets.
const KindTerminate = "terminate"

type terminatePayload struct {
	UserID string `json:"user_id"`
}

// Terminate asks every node to close the sockets of userID in appID.
func (d *Dispatcher) Terminate(ctx context.Context, appID, userID string) error {
	payload, err := json.Marshal(terminatePayload{UserID: userID})
	if err != nil {
		return fmt.Errorf("encode terminate: %w", err)
	}
	if _, err := d.pubsub.Publish(ctx, scaling.Envelope{V: scaling.Version, Kind: KindTerminate, AppID: appID, Payload: payload}); err != nil {
		return fmt.Errorf("publish terminate: %w", err)
	}
	return nil
}

// Terminator closes this node's sockets of a user when a terminate
// envelope arrives. Each socket gets pusher:error 4009 and close code 4009,
// so pusher-js does not reconnect.
type Terminator struct {
	channels *channels.Manager
	log      *slog.Logger
}

// NewTerminator returns a Terminator.
func NewTerminator(manager *channels.Manager, log *slog.Logger) *Terminator {
	return &Terminator{channels: manager, log: log}
}

// Kind reports KindTerminate.
func (t *Terminator) Kind() string { return KindTerminate }

// Handle closes the user's sockets on this node.
func (t *Terminator) Handle(_ context.Context, e scaling.Envelope) {
	var p terminatePayload
	if err := json.Unmarshal(e.Payload, &p); err != nil || p.UserID == "" {
		t.log.Warn("dropped malformed terminate envelope", "app_id", e.AppID, "origin", e.Origin, "err", err)
		return
	}
	terminated := pusher.Fatalf(pusher.CodeUnauthorized, "Connection terminated by the application")
	for _, c := range t.channels.UserConns(e.AppID, p.UserID) {
		c.Close(terminated)
	}
}
