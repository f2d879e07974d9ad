package pusher

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Frame is one message a client sent: an event name, an optional channel and
// the raw JSON of its data (nil when absent).
type Frame struct {
	Event   string
	Channel string
	Data    json.RawMessage
}

// ParseFrame decodes a client frame. It accepts only a JSON object whose
// "event" is a non-empty string and whose "channel", when present, is a
// string or null. Keys match exactly, as in JavaScript: "Event" is not
// "event". Text that is not valid UTF-8 is refused: Data is relayed verbatim
// and a browser drops a socket that receives invalid UTF-8 in a text frame.
// Any other input is a non-fatal 4200 error.
func ParseFrame(b []byte) (Frame, error) {
	b = trimJSONSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return Frame{}, Errorf(CodeGeneric, "Invalid message format: expected a JSON object")
	}
	if !utf8.Valid(b) {
		return Frame{}, Errorf(CodeGeneric, "Invalid message format: not valid UTF-8")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Frame{}, Errorf(CodeGeneric, "Invalid message format: %s", jsonProblem(err))
	}
	var f Frame
	var ok bool
	if f.Event, ok = decodeString(raw["event"]); !ok || f.Event == "" {
		return Frame{}, Errorf(CodeGeneric, "Invalid message format: event must be a non-empty string")
	}
	if f.Channel, ok = decodeString(raw["channel"]); !ok {
		return Frame{}, Errorf(CodeGeneric, "Invalid message format: channel must be a string")
	}
	f.Data = nonNull(raw["data"])
	return f, nil
}

// decodeString decodes a JSON string, or null or an absent value as "". ok is
// false for any other JSON value. raw must be one valid JSON value, as
// json.Unmarshal leaves in a json.RawMessage.
func decodeString(raw json.RawMessage) (s string, ok bool) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", true
	}
	if raw[0] != '"' {
		return "", false
	}
	// Fast path: nothing to unescape and nothing to replace.
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	return s, json.Unmarshal(raw, &s) == nil
}

// nonNull returns raw, or nil when raw is absent or the JSON null.
func nonNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	return raw
}

// trimJSONSpace trims the whitespace JSON allows around a value: space, tab,
// CR and LF. bytes.TrimSpace would also take Unicode spaces such as U+00A0,
// which make the text invalid JSON.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// Subscription is the data of a pusher:subscribe frame.
type Subscription struct {
	Channel     string `json:"channel"`
	Auth        string `json:"auth"`
	ChannelData string `json:"channel_data"`
}

// ParseSubscription decodes the data of pusher:subscribe (or unsubscribe).
// The data may be an object or a JSON string holding one, as some clients
// send it.
func ParseSubscription(data json.RawMessage) (Subscription, error) {
	obj, err := ObjectData(data)
	if err != nil {
		return Subscription{}, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(obj, &raw); err != nil {
		return Subscription{}, Errorf(CodeGeneric, "Invalid subscription: %s", jsonProblem(err))
	}
	var s Subscription
	var ok bool
	if s.Channel, ok = decodeString(raw["channel"]); !ok || s.Channel == "" {
		return Subscription{}, Errorf(CodeGeneric, "Invalid subscription: channel must be a non-empty string")
	}
	if s.Auth, ok = decodeString(raw["auth"]); !ok {
		return Subscription{}, Errorf(CodeGeneric, "Invalid subscription: auth must be a string")
	}
	channelData := raw["channel_data"]
	if s.ChannelData, ok = decodeString(channelData); !ok {
		// Some clients send channel_data as an object; keep its JSON text.
		if channelData[0] != '{' {
			return Subscription{}, Errorf(CodeGeneric, "Invalid subscription: channel_data must be a JSON string")
		}
		s.ChannelData = string(channelData)
	}
	return s, nil
}

// ObjectData returns data as a JSON object, unwrapping a JSON string. It
// checks only the first byte, not that the object is well formed, and
// refuses text that is not valid UTF-8.
func ObjectData(data json.RawMessage) (json.RawMessage, error) {
	data = trimJSONSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, Errorf(CodeGeneric, "Invalid message format: data is not valid JSON")
		}
		data = trimJSONSpace([]byte(s))
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, Errorf(CodeGeneric, "Invalid message format: data must be a JSON object")
	}
	if !utf8.Valid(data) {
		return nil, Errorf(CodeGeneric, "Invalid message format: not valid UTF-8")
	}
	return data, nil
}

// Member is a presence member as a backend describes it in channel_data.
type Member struct {
	UserID   string
	UserInfo json.RawMessage // nil when absent
}

// ParseChannelData decodes presence channel_data. user_id may be a string or
// a number (Laravel sends integers); it is kept as a string, a number in the
// exact text it was sent in.
func ParseChannelData(channelData string) (Member, error) {
	b := trimJSONSpace([]byte(channelData))
	if len(b) == 0 || b[0] != '{' {
		return Member{}, Errorf(CodeGeneric, "Invalid channel_data: must be a JSON object")
	}
	if !utf8.Valid(b) {
		return Member{}, Errorf(CodeGeneric, "Invalid channel_data: not valid UTF-8")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Member{}, Errorf(CodeGeneric, "Invalid channel_data: %s", jsonProblem(err))
	}
	id, ok := UserID(raw["user_id"])
	if !ok {
		return Member{}, Errorf(CodeGeneric, "Invalid channel_data: user_id must be a non-empty string or number")
	}
	return Member{UserID: id, UserInfo: nonNull(raw["user_info"])}, nil
}

// UserID decodes the JSON of a user id that is a non-empty string or a
// number; a number is kept in the exact text it was sent in. ok is false for
// anything else, including text that is not one valid JSON value.
func UserID(raw json.RawMessage) (id string, ok bool) {
	raw = trimJSONSpace(raw)
	if len(raw) == 0 || !json.Valid(raw) {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		s, ok := decodeString(raw)
		return s, ok && s != ""
	case c == '-' || '0' <= c && c <= '9':
		return string(raw), true
	default: // null, true, false, an object or an array
		return "", false
	}
}

func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return "not valid JSON"
	case *json.UnmarshalTypeError:
		if e.Field != "" {
			return e.Field + " has the wrong type"
		}
		return "wrong type"
	default:
		return "not valid JSON"
	}
}

// EncodeEvent returns the JSON frame {"event":…,"channel":…,"data":…} with
// an optional "user_id". data must be valid JSON (or empty to leave it out);
// channel and userID are left out when empty.
func EncodeEvent(event, channel string, data json.RawMessage, userID string) []byte {
	b := make([]byte, 0, 32+len(event)+len(channel)+len(data)+len(userID))
	return AppendEvent(b, event, channel, data, userID)
}

// AppendEvent appends the frame EncodeEvent returns to b.
func AppendEvent(b []byte, event, channel string, data json.RawMessage, userID string) []byte {
	b = append(b, `{"event":`...)
	b = AppendString(b, event)
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = AppendString(b, channel)
	}
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	if userID != "" {
		b = append(b, `,"user_id":`...)
		b = AppendString(b, userID)
	}
	return append(b, '}')
}

// StringData returns the JSON string holding text, the form Pusher uses for
// the data of most server events.
func StringData(text []byte) json.RawMessage {
	return AppendString(make([]byte, 0, len(text)+16), string(text))
}

// ErrorFrame returns the pusher:error frame for e.
func ErrorFrame(e *Error) []byte {
	b := []byte(`{"code":`)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, `,"message":`...)
	b = AppendString(b, e.Message)
	b = append(b, '}')
	return EncodeEvent(EventError, "", b, "")
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to b as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does. '<', '>' and '&' are not escaped.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
