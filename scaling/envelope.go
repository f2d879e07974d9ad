package scaling

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the envelope format this build writes and reads.
const Version = 1

// Envelope is one message between nodes. Payload's shape depends on Kind and
// is owned by the Handler of that kind. Envelopes never carry app secrets.
//
// Seq is optional and was added within version 1: a member transition
// (KindPresence, published by the shared state) carries the Seq of its
// change (see State); 0 (absent) means the event has no number.
type Envelope struct {
	V        int             `json:"v"`
	Kind     string          `json:"kind"`
	AppID    string          `json:"app_id,omitempty"`
	Origin   string          `json:"origin,omitempty"`
	SocketID string          `json:"socket_id,omitempty"`
	Seq      uint64          `json:"seq,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	// Route is the Pusher channel (of AppID) whose order the envelope
	// keeps, set by the publisher of an event: a Sharder sends it over
	// that channel's stream. Empty: the shared stream. Never sent.
	Route string `json:"-"`
}

// ErrBadEnvelope wraps every reason an incoming envelope is refused.
var ErrBadEnvelope = errors.New("bad envelope")

// DecodeEnvelope parses and checks an envelope received from another node.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrBadEnvelope, err)
	}
	if e.V != Version {
		return Envelope{}, fmt.Errorf("%w: version %d, want %d", ErrBadEnvelope, e.V, Version)
	}
	if e.Kind == "" {
		return Envelope{}, fmt.Errorf("%w: no kind", ErrBadEnvelope)
	}
	return e, nil
}
