package pusher_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
)

func TestEncodeEvent(t *testing.T) {
	type give struct {
		event, channel string
		data           json.RawMessage
		userID         string
	}
	tests := []struct {
		name string
		give give
		want string
	}{
		{
			name: "event only",
			give: give{event: "pusher:pong"},
			want: `{"event":"pusher:pong"}`,
		},
		{
			name: "object data",
			give: give{event: "pusher:pong", data: json.RawMessage(`{}`)},
			want: `{"event":"pusher:pong","data":{}}`,
		},
		{
			name: "channel and string data",
			give: give{event: "my-event", channel: "my-channel", data: json.RawMessage(`"{\"a\":1}"`)},
			want: `{"event":"my-event","channel":"my-channel","data":"{\"a\":1}"}`,
		},
		{
			name: "client event on a presence channel gets user_id",
			give: give{event: "client-x", channel: "presence-a", data: json.RawMessage(`{"n":1}`), userID: "10"},
			want: `{"event":"client-x","channel":"presence-a","data":{"n":1},"user_id":"10"}`,
		},
		{
			name: "empty data is left out",
			give: give{event: "e", data: json.RawMessage{}},
			want: `{"event":"e"}`,
		},
		{
			name: "names are escaped",
			give: give{event: "App\\Events\\\"Sent\"", channel: "c<&>", userID: "a\nb"},
			want: `{"event":"App\\Events\\\"Sent\"","channel":"c<&>","user_id":"a\nb"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pusher.EncodeEvent(tt.give.event, tt.give.channel, tt.give.data, tt.give.userID)
			assert.Equal(t, tt.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}
}

// decodedEvent is what a client reads back from an encoded event.
type decodedEvent struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  string          `json:"user_id"`
}

// asJSONString is what s becomes after a JSON round trip through
// encoding/json: invalid UTF-8 turns into U+FFFD.
func asJSONString(t testing.TB, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var out string
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestEncodeEventIsValidJSONForAnyStrings(t *testing.T) {
	tests := []struct {
		name string
		give string // used as the event, channel and user id
	}{
		{name: "plain", give: "client-message"},
		{name: "quotes and backslashes", give: `"\"\\`},
		{name: "every control character", give: controlCharacters()},
		{name: "HTML characters", give: "<script>&amp;</script>"},
		{name: "line and paragraph separators", give: "a\u2028b\u2029c"},
		{name: "non-ASCII", give: "日本語 😀 é"},
		{name: "replacement character", give: "\uFFFD"},
		{name: "invalid UTF-8", give: "a\xffb\xc3\x28c\xed\xa0\x80"},
		{name: "truncated rune", give: "\xe6\x97"},
		{name: "DEL", give: "\x7f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pusher.EncodeEvent(tt.give, tt.give, json.RawMessage(`{"n":1}`), tt.give)
			require.True(t, json.Valid(got), "%q", got)
			assert.True(t, utf8.Valid(got))
			var back decodedEvent
			require.NoError(t, json.Unmarshal(got, &back))
			want := asJSONString(t, tt.give)
			assert.Equal(t, decodedEvent{Event: want, Channel: want, Data: json.RawMessage(`{"n":1}`), UserID: want}, back)
		})
	}
}

func TestAppendEventAppends(t *testing.T) {
	got := pusher.AppendEvent([]byte("prefix:"), "e", "c", json.RawMessage(`1`), "")
	assert.Equal(t, `prefix:{"event":"e","channel":"c","data":1}`, string(got))
}

func TestStringData(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{name: "empty", give: "", want: `""`},
		{name: "text", give: "hello", want: `"hello"`},
		{name: "JSON object", give: `{"a":"b"}`, want: `"{\"a\":\"b\"}"`},
		{name: "newline and tab", give: "a\nb\tc", want: `"a\nb\tc"`},
		{name: "invalid UTF-8", give: "a\xffb", want: `"a\ufffdb"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, string(pusher.StringData([]byte(tt.give))))
		})
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{name: "empty", give: "", want: `""`},
		{name: "ASCII", give: "private-a", want: `"private-a"`},
		{name: "quote", give: `a"b`, want: `"a\"b"`},
		{name: "backslash", give: `a\b`, want: `"a\\b"`},
		{name: "newline", give: "\n", want: `"\n"`},
		{name: "carriage return", give: "\r", want: `"\r"`},
		{name: "tab", give: "\t", want: `"\t"`},
		{name: "NUL", give: "\x00", want: `"\u0000"`},
		{name: "backspace and form feed", give: "\b\f", want: `"\u0008\u000c"`},
		{name: "unit separator", give: "\x1f", want: `"\u001f"`},
		{name: "DEL is not escaped", give: "\x7f", want: "\"\x7f\""},
		{name: "HTML is not escaped", give: "<a&b>", want: `"<a&b>"`},
		{name: "slash is not escaped", give: "a/b", want: `"a/b"`},
		{name: "line separator", give: "\u2028", want: `"\u2028"`},
		{name: "paragraph separator", give: "\u2029", want: `"\u2029"`},
		{name: "non-ASCII", give: "é日😀", want: `"é日😀"`},
		{name: "replacement character is kept", give: "\uFFFD", want: "\"\uFFFD\""},
		{name: "invalid byte", give: "a\xffb", want: `"a\ufffdb"`},
		{name: "each invalid byte", give: "\xff\xfe", want: `"\ufffd\ufffd"`},
		{name: "truncated rune", give: "\xe6\x97x", want: `"\ufffd\ufffdx"`},
		{name: "UTF-8-encoded surrogate", give: "\xed\xa0\x80", want: `"\ufffd\ufffd\ufffd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, "pre"+tt.want, string(pusher.AppendString([]byte("pre"), tt.give)))
		})
	}
}

func controlCharacters() string {
	var b strings.Builder
	for c := range rune(0x20) {
		b.WriteRune(c)
	}
	return b.String()
}

func TestAppendStringRoundTrips(t *testing.T) {
	tests := []struct {
		name string
		give string // valid UTF-8
	}{
		{name: "empty", give: ""},
		{name: "every control character", give: controlCharacters()},
		{name: "every ASCII character", give: asciiCharacters()},
		{name: "quotes and backslashes", give: `\"\\""\`},
		{name: "JSON text", give: `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`},
		{name: "separators", give: "\u2028\u2029\u2027\u202a"},
		{name: "every UTF-8 length", give: "a\u00e9\u65e5\U0001F600"},
		{name: "highest code point", give: "\U0010FFFF"},
		{name: "replacement character", give: "\uFFFD"},
		{name: "byte order mark", give: "\uFEFF"},
		{name: "long", give: strings.Repeat("ab\"c\n日", 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.True(t, utf8.ValidString(tt.give))
			encoded := pusher.AppendString(nil, tt.give)
			var got string
			require.NoError(t, json.Unmarshal(encoded, &got))
			assert.Equal(t, tt.give, got)
		})
	}
}

func asciiCharacters() string {
	var b strings.Builder
	for c := range rune(utf8.RuneSelf) {
		b.WriteRune(c)
	}
	return b.String()
}

func TestErrorFrame(t *testing.T) {
	tests := []struct {
		name string
		give *pusher.Error
		want string
	}{
		{
			name: "non-fatal",
			give: pusher.Errorf(pusher.CodeGeneric, "Invalid message format"),
			want: `{"event":"pusher:error","data":{"code":4200,"message":"Invalid message format"}}`,
		},
		{
			name: "fatal with quotes in the message",
			give: pusher.Fatalf(pusher.CodeAppNotFound, "Application %q does not exist", "k"),
			want: `{"event":"pusher:error","data":{"code":4001,"message":"Application \"k\" does not exist"}}`,
		},
		{
			name: "invalid UTF-8 in the message",
			give: pusher.Errorf(pusher.CodeGeneric, "Invalid channel name %s", "\xff"),
			want: `{"event":"pusher:error","data":{"code":4200,"message":"Invalid channel name \ufffd"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pusher.ErrorFrame(tt.give)
			assert.Equal(t, tt.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}
}
