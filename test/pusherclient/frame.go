package pusherclient

import (
	"encoding/json"
	"fmt"
)

// Events the client records for WebSocket control frames, so that tests can
// Expect them like protocol events. Their payload is in Frame.Raw.
const (
	EventControlPing = "websocket:ping"
	EventControlPong = "websocket:pong"
)

// Frame is one message the server sent.
type Frame struct {
	// Event, Channel and UserID are the frame's fields; a numeric user_id
	// keeps its JSON text. They are empty when the frame is not a JSON
	// object with a string event.
	Event   string
	Channel string
	UserID  string
	// Data is the raw JSON value of "data", nil when absent.
	Data json.RawMessage
	// Raw is the whole message as received (the payload of a control frame).
	Raw []byte
	// Binary is true for a binary message.
	Binary bool
}

// DecodeFrame parses a text or binary message from the server. It never
// fails: a message that is not a JSON object with a string event gives a
// Frame with Raw (and Binary) only.
func DecodeFrame(binary bool, msg []byte) Frame {
	f := Frame{Raw: msg, Binary: binary}
	var raw struct {
		Event   string          `json:"event"`
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
		UserID  json.RawMessage `json:"user_id"`
	}
	if binary || json.Unmarshal(msg, &raw) != nil {
		return f
	}
	f.Event, f.Channel, f.Data = raw.Event, raw.Channel, raw.Data
	if len(raw.UserID) > 0 && raw.UserID[0] == '"' {
		_ = json.Unmarshal(raw.UserID, &f.UserID) // valid: the whole message parsed
	} else if len(raw.UserID) > 0 && string(raw.UserID) != "null" {
		f.UserID = string(raw.UserID)
	}
	return f
}

// Text returns the data decoded when it is a JSON string (the form Pusher
// uses for server events), else the raw JSON text of the data.
func (f Frame) Text() string {
	if len(f.Data) > 0 && f.Data[0] == '"' {
		var s string
		if json.Unmarshal(f.Data, &s) == nil {
			return s
		}
	}
	return string(f.Data)
}

// DecodeData unmarshals the data into v, unwrapping a JSON string first.
func (f Frame) DecodeData(v any) error {
	if err := json.Unmarshal([]byte(f.Text()), v); err != nil {
		return fmt.Errorf("decode data of %s: %w", f, err)
	}
	return nil
}

// ErrorData is the data of a pusher:error frame.
type ErrorData struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// PusherError decodes the data of a pusher:error frame.
func (f Frame) PusherError() (ErrorData, error) { return decodeAs[ErrorData](f) }

// SubscriptionError is the data of a pusher:subscription_error frame.
type SubscriptionError struct {
	Type   string `json:"type"`
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// SubscriptionError decodes the data of a pusher:subscription_error frame.
func (f Frame) SubscriptionError() (SubscriptionError, error) {
	return decodeAs[SubscriptionError](f)
}

// PresenceList is the data of pusher_internal:subscription_succeeded on a
// presence channel: the members' ids, their user_info by id, and the count.
type PresenceList struct {
	Presence struct {
		IDs   []string                   `json:"ids"`
		Hash  map[string]json.RawMessage `json:"hash"`
		Count int                        `json:"count"`
	} `json:"presence"`
}

// PresenceList decodes the data of subscription_succeeded on a presence
// channel; a non-string id is an error.
func (f Frame) PresenceList() (PresenceList, error) { return decodeAs[PresenceList](f) }

// decodeAs decodes the data of f as a T (see DecodeData).
func decodeAs[T any](f Frame) (T, error) {
	var v T
	err := f.DecodeData(&v)
	return v, err
}

// String describes the frame for test failure messages.
func (f Frame) String() string {
	if f.Event == "" {
		kind := "text"
		if f.Binary {
			kind = "binary"
		}
		return fmt.Sprintf("%s frame %q", kind, clip(string(f.Raw)))
	}
	s := f.Event
	if f.Channel != "" {
		s += " on " + f.Channel
	}
	if len(f.Data) > 0 {
		s += " data=" + clip(string(f.Data))
	}
	if f.UserID != "" {
		s += " user_id=" + f.UserID
	}
	return s
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
