package pusher_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
)

// deepData is a data value nested depth arrays deep.
func deepData(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// requireGeneric asserts that err is the non-fatal 4200 error with message.
func requireGeneric(t *testing.T, err error, message string) {
	t.Helper()
	var pe *pusher.Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, pusher.Error{Code: pusher.CodeGeneric, Message: message}, *pe)
}

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name string
		give string
		want pusher.Frame
	}{
		{
			name: "ping with empty object data",
			give: `{"event":"pusher:ping","data":{}}`,
			want: pusher.Frame{Event: "pusher:ping", Data: json.RawMessage(`{}`)},
		},
		{
			name: "client event with channel and object data",
			give: `{"event":"client-typing","channel":"private-chat","data":{"user":"alice","typing":true}}`,
			want: pusher.Frame{Event: "client-typing", Channel: "private-chat", Data: json.RawMessage(`{"user":"alice","typing":true}`)},
		},
		{
			name: "subscribe with data as a JSON-encoded string",
			give: `{"event":"pusher:subscribe","data":"{\"channel\":\"a\"}"}`,
			want: pusher.Frame{Event: "pusher:subscribe", Data: json.RawMessage(`"{\"channel\":\"a\"}"`)},
		},
		{
			name: "data absent",
			give: `{"event":"pusher:ping"}`,
			want: pusher.Frame{Event: "pusher:ping"},
		},
		{
			name: "data null",
			give: `{"event":"pusher:ping","data":null}`,
			want: pusher.Frame{Event: "pusher:ping"},
		},
		{
			name: "data number",
			give: `{"event":"client-x","channel":"private-a","data":-1.5e3}`,
			want: pusher.Frame{Event: "client-x", Channel: "private-a", Data: json.RawMessage(`-1.5e3`)},
		},
		{
			name: "channel null",
			give: `{"event":"pusher:ping","channel":null}`,
			want: pusher.Frame{Event: "pusher:ping"},
		},
		{
			name: "key order does not matter",
			give: `{"data":[1],"channel":"c","event":"e"}`,
			want: pusher.Frame{Event: "e", Channel: "c", Data: json.RawMessage(`[1]`)},
		},
		{
			name: "unknown keys are ignored",
			give: `{"event":"e","user_id":"1","extra":{"a":[1,2]}}`,
			want: pusher.Frame{Event: "e"},
		},
		{
			name: "JSON whitespace around and inside",
			give: " \t\r\n{ \"event\" : \"e\" ,\n\"data\" : [ 1 , 2 ] }\r\n\t ",
			want: pusher.Frame{Event: "e", Data: json.RawMessage(`[ 1 , 2 ]`)},
		},
		{
			name: "escapes in event and channel",
			give: `{"event":"client-\u00e9\n\"q\"","channel":"private-\u0061"}`,
			want: pusher.Frame{Event: "client-é\n\"q\"", Channel: "private-a"},
		},
		{
			name: "escaped key",
			give: `{"\u0065vent":"e"}`,
			want: pusher.Frame{Event: "e"},
		},
		{
			name: "duplicate key: the last wins, as in JavaScript",
			give: `{"event":"first","event":"second"}`,
			want: pusher.Frame{Event: "second"},
		},
		{
			name: "non-ASCII UTF-8",
			give: `{"event":"client-日本","data":"😀"}`,
			want: pusher.Frame{Event: "client-日本", Data: json.RawMessage(`"😀"`)},
		},
		{
			name: "deep nesting at the decoder's limit",
			give: `{"event":"e","data":` + deepData(9999) + `}`,
			want: pusher.Frame{Event: "e", Data: json.RawMessage(deepData(9999))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pusher.ParseFrame([]byte(tt.give))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseFrameDataIsACopy(t *testing.T) {
	// A WebSocket library may reuse its read buffer for the next frame.
	b := []byte(`{"event":"client-x","channel":"private-a","data":{"n":1}}`)
	f, err := pusher.ParseFrame(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = 'x'
	}
	assert.Equal(t, json.RawMessage(`{"n":1}`), f.Data)
	assert.Equal(t, "client-x", f.Event)
	assert.Equal(t, "private-a", f.Channel)
}

func TestParseFrameRefuses(t *testing.T) {
	const (
		notObject   = "Invalid message format: expected a JSON object"
		notJSON     = "Invalid message format: not valid JSON"
		notUTF8     = "Invalid message format: not valid UTF-8"
		badEvent    = "Invalid message format: event must be a non-empty string"
		badChannel  = "Invalid message format: channel must be a string"
		deeperThan  = 10001 // encoding/json refuses nesting deeper than 10000
		nonBreaking = "\u00a0"
	)
	tests := []struct {
		name string
		give string
		want string // the message of the 4200 error
	}{
		{name: "empty", give: "", want: notObject},
		{name: "whitespace only", give: " \t\r\n", want: notObject},
		{name: "not JSON", give: "hello", want: notObject},
		{name: "JSON array", give: `[{"event":"e"}]`, want: notObject},
		{name: "JSON number", give: `42`, want: notObject},
		{name: "JSON string", give: `"{\"event\":\"e\"}"`, want: notObject},
		{name: "JSON null", give: `null`, want: notObject},
		{name: "JSON true", give: `true`, want: notObject},
		{name: "Unicode space before", give: nonBreaking + `{"event":"e"}`, want: notObject},
		{name: "Unicode space after", give: `{"event":"e"}` + nonBreaking, want: notJSON},
		{name: "truncated object", give: `{"event":"e"`, want: notJSON},
		{name: "trailing garbage", give: `{"event":"e"}x`, want: notJSON},
		{name: "two objects", give: `{"event":"e"}{"event":"f"}`, want: notJSON},
		{name: "trailing comma", give: `{"event":"e",}`, want: notJSON},
		{name: "single quotes", give: `{'event':'e'}`, want: notJSON},
		{name: "raw newline in string", give: "{\"event\":\"a\nb\"}", want: notJSON},
		{name: "too deep", give: `{"event":"e","data":` + deepData(deeperThan) + `}`, want: notJSON},
		{name: "invalid UTF-8 in event", give: "{\"event\":\"client-\xff\"}", want: notUTF8},
		{name: "invalid UTF-8 in data", give: "{\"event\":\"client-x\",\"data\":\"\xc3\x28\"}", want: notUTF8},
		{name: "UTF-8-encoded surrogate", give: "{\"event\":\"e\",\"data\":\"\xed\xa0\x80\"}", want: notUTF8},
		{name: "event missing", give: `{"channel":"c","data":{}}`, want: badEvent},
		{name: "empty object", give: `{}`, want: badEvent},
		{name: "event empty", give: `{"event":""}`, want: badEvent},
		{name: "event null", give: `{"event":null}`, want: badEvent},
		{name: "event number", give: `{"event":42}`, want: badEvent},
		{name: "event object", give: `{"event":{"name":"e"}}`, want: badEvent},
		{name: "event array", give: `{"event":["e"]}`, want: badEvent},
		{name: "event boolean", give: `{"event":true}`, want: badEvent},
		{name: "event key in another case", give: `{"Event":"e"}`, want: badEvent},
		{name: "last duplicate event is a number", give: `{"event":"e","event":1}`, want: badEvent},
		{name: "channel number", give: `{"event":"e","channel":42}`, want: badChannel},
		{name: "channel object", give: `{"event":"e","channel":{}}`, want: badChannel},
		{name: "channel array", give: `{"event":"e","channel":["c"]}`, want: badChannel},
		{name: "channel boolean", give: `{"event":"e","channel":false}`, want: badChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pusher.ParseFrame([]byte(tt.give))
			requireGeneric(t, err, tt.want)
			assert.Zero(t, got)
		})
	}
}

func TestParseSubscription(t *testing.T) {
	tests := []struct {
		name string
		give string
		want pusher.Subscription
	}{
		{
			name: "public channel",
			give: `{"channel":"my-channel"}`,
			want: pusher.Subscription{Channel: "my-channel"},
		},
		{
			name: "private channel with auth",
			give: `{"channel":"private-foobar","auth":"278d425bdf160c739803:58df8b0c"}`,
			want: pusher.Subscription{Channel: "private-foobar", Auth: "278d425bdf160c739803:58df8b0c"},
		},
		{
			name: "presence channel with channel_data as a string",
			give: `{"channel":"presence-foobar","auth":"k:s","channel_data":"{\"user_id\":10}"}`,
			want: pusher.Subscription{Channel: "presence-foobar", Auth: "k:s", ChannelData: `{"user_id":10}`},
		},
		{
			name: "channel_data as an object keeps its JSON text",
			give: `{"channel":"presence-foobar","auth":"k:s","channel_data":{"user_id":10, "user_info":{}}}`,
			want: pusher.Subscription{Channel: "presence-foobar", Auth: "k:s", ChannelData: `{"user_id":10, "user_info":{}}`},
		},
		{
			name: "data as a JSON-encoded string",
			give: `"{\"channel\":\"private-a\",\"auth\":\"k:s\"}"`,
			want: pusher.Subscription{Channel: "private-a", Auth: "k:s"},
		},
		{
			name: "JSON-encoded string with whitespace inside",
			give: `" \n{\"channel\":\"a\"}\t "`,
			want: pusher.Subscription{Channel: "a"},
		},
		{
			name: "whitespace around the object",
			give: " \n{\"channel\":\"a\"}\n ",
			want: pusher.Subscription{Channel: "a"},
		},
		{
			name: "auth and channel_data null",
			give: `{"channel":"a","auth":null,"channel_data":null}`,
			want: pusher.Subscription{Channel: "a"},
		},
		{
			name: "unknown keys are ignored",
			give: `{"channel":"a","extra":[1,{"b":2}]}`,
			want: pusher.Subscription{Channel: "a"},
		},
		{
			name: "escapes are decoded",
			give: `{"channel":"private-\u0061","auth":"k:\u0073"}`,
			want: pusher.Subscription{Channel: "private-a", Auth: "k:s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pusher.ParseSubscription(json.RawMessage(tt.give))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseSubscriptionRefuses(t *testing.T) {
	const (
		notObject      = "Invalid message format: data must be a JSON object"
		badString      = "Invalid message format: data is not valid JSON"
		notUTF8        = "Invalid message format: not valid UTF-8"
		notJSON        = "Invalid subscription: not valid JSON"
		badChannel     = "Invalid subscription: channel must be a non-empty string"
		badAuth        = "Invalid subscription: auth must be a string"
		badChannelData = "Invalid subscription: channel_data must be a JSON string"
	)
	tests := []struct {
		name string
		give string
		want string // the message of the 4200 error
	}{
		{name: "data absent", give: "", want: notObject},
		{name: "data null", give: `null`, want: notObject},
		{name: "data number", give: `42`, want: notObject},
		{name: "data array", give: `[{"channel":"a"}]`, want: notObject},
		{name: "data string that is not an object", give: `"private-a"`, want: notObject},
		{name: "data string holding a string", give: `"\"{\\\"channel\\\":\\\"a\\\"}\""`, want: notObject},
		{name: "data string not terminated", give: `"{\"channel\":\"a\"}`, want: badString},
		{name: "data string holding broken JSON", give: `"{\"channel\":"`, want: notJSON},
		{name: "broken object", give: `{"channel":"a"`, want: notJSON},
		{name: "invalid UTF-8", give: "{\"channel\":\"a\",\"channel_data\":{\"user_id\":\"\xff\"}}", want: notUTF8},
		{name: "channel missing", give: `{"auth":"k:s"}`, want: badChannel},
		{name: "channel empty", give: `{"channel":""}`, want: badChannel},
		{name: "channel null", give: `{"channel":null}`, want: badChannel},
		{name: "channel number", give: `{"channel":42}`, want: badChannel},
		{name: "channel object", give: `{"channel":{"name":"a"}}`, want: badChannel},
		{name: "channel key in another case", give: `{"Channel":"a"}`, want: badChannel},
		{name: "auth number", give: `{"channel":"private-a","auth":42}`, want: badAuth},
		{name: "auth object", give: `{"channel":"private-a","auth":{}}`, want: badAuth},
		{name: "channel_data number", give: `{"channel":"presence-a","channel_data":10}`, want: badChannelData},
		{name: "channel_data array", give: `{"channel":"presence-a","channel_data":[{"user_id":1}]}`, want: badChannelData},
		{name: "channel_data boolean", give: `{"channel":"presence-a","channel_data":true}`, want: badChannelData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pusher.ParseSubscription(json.RawMessage(tt.give))
			requireGeneric(t, err, tt.want)
			assert.Zero(t, got)
		})
	}
}

func TestObjectData(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{name: "object", give: `{"a":1}`, want: `{"a":1}`},
		{name: "object with JSON whitespace", give: " \t{\"a\":1}\r\n", want: `{"a":1}`},
		{name: "JSON-encoded object", give: `"{\"user_data\":\"{}\"}"`, want: `{"user_data":"{}"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pusher.ObjectData(json.RawMessage(tt.give))
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestParseChannelData(t *testing.T) {
	tests := []struct {
		name string
		give string
		want pusher.Member
	}{
		{
			name: "user_id string",
			give: `{"user_id":"abc-123"}`,
			want: pusher.Member{UserID: "abc-123"},
		},
		{
			name: "user_id integer, as Laravel sends it",
			give: `{"user_id":10}`,
			want: pusher.Member{UserID: "10"},
		},
		{
			name: "user_id negative integer",
			give: `{"user_id":-7}`,
			want: pusher.Member{UserID: "-7"},
		},
		{
			name: "user_id float keeps its text",
			give: `{"user_id":10.5}`,
			want: pusher.Member{UserID: "10.5"},
		},
		{
			name: "user_id with exponent keeps its text",
			give: `{"user_id":1e3}`,
			want: pusher.Member{UserID: "1e3"},
		},
		{
			name: "user_id zero",
			give: `{"user_id":0}`,
			want: pusher.Member{UserID: "0"},
		},
		{
			name: "user_id with escapes",
			give: `{"user_id":"caf\u00e9 \"1\""}`,
			want: pusher.Member{UserID: `café "1"`},
		},
		{
			name: "user_info object",
			give: `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`,
			want: pusher.Member{UserID: "10", UserInfo: json.RawMessage(`{"name":"Mr. Pusher"}`)},
		},
		{
			name: "user_info absent",
			give: `{"user_id":"1"}`,
			want: pusher.Member{UserID: "1"},
		},
		{
			name: "user_info null",
			give: `{"user_id":"1","user_info":null}`,
			want: pusher.Member{UserID: "1"},
		},
		{
			name: "user_info that is not an object is passed on",
			give: `{"user_id":"1","user_info":"plain"}`,
			want: pusher.Member{UserID: "1", UserInfo: json.RawMessage(`"plain"`)},
		},
		{
			name: "whitespace",
			give: " {\n\"user_id\" : 10 ,\"user_info\" : { \"a\" : 1 } }\n",
			want: pusher.Member{UserID: "10", UserInfo: json.RawMessage(`{ "a" : 1 }`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pusher.ParseChannelData(tt.give)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseChannelDataRefuses(t *testing.T) {
	const (
		notObject = "Invalid channel_data: must be a JSON object"
		notJSON   = "Invalid channel_data: not valid JSON"
		notUTF8   = "Invalid channel_data: not valid UTF-8"
		badUserID = "Invalid channel_data: user_id must be a non-empty string or number"
	)
	tests := []struct {
		name string
		give string
		want string // the message of the 4200 error
	}{
		{name: "empty", give: "", want: notObject},
		{name: "not JSON", give: "user 10", want: notObject},
		{name: "JSON null", give: `null`, want: notObject},
		{name: "JSON array", give: `[{"user_id":1}]`, want: notObject},
		{name: "JSON string", give: `"{\"user_id\":1}"`, want: notObject},
		{name: "JSON number", give: `10`, want: notObject},
		{name: "truncated", give: `{"user_id":1`, want: notJSON},
		{name: "trailing garbage", give: `{"user_id":1}}`, want: notJSON},
		{name: "invalid UTF-8", give: "{\"user_id\":1,\"user_info\":\"\xff\"}", want: notUTF8},
		{name: "user_id missing", give: `{"user_info":{}}`, want: badUserID},
		{name: "user_id empty", give: `{"user_id":""}`, want: badUserID},
		{name: "user_id null", give: `{"user_id":null}`, want: badUserID},
		{name: "user_id object", give: `{"user_id":{"id":1}}`, want: badUserID},
		{name: "user_id array", give: `{"user_id":[1]}`, want: badUserID},
		{name: "user_id boolean", give: `{"user_id":true}`, want: badUserID},
		{name: "user_id key in another case", give: `{"USER_ID":"1"}`, want: badUserID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pusher.ParseChannelData(tt.give)
			requireGeneric(t, err, tt.want)
			assert.Zero(t, got)
		})
	}
}

func TestUserID(t *testing.T) {
	type result struct {
		ID string
		OK bool
	}
	tests := []struct {
		name string
		give string
		want result
	}{
		{name: "string", give: `"12345"`, want: result{"12345", true}},
		{name: "integer", give: `12345`, want: result{"12345", true}},
		{name: "float", give: `1.5`, want: result{"1.5", true}},
		{name: "escaped string", give: `"a\tb"`, want: result{"a\tb", true}},
		{name: "surrounding whitespace", give: " 7\n", want: result{"7", true}},
		{name: "absent", give: ``, want: result{}},
		{name: "empty string", give: `""`, want: result{}},
		{name: "null", give: `null`, want: result{}},
		{name: "boolean", give: `false`, want: result{}},
		{name: "object", give: `{}`, want: result{}},
		{name: "array", give: `["1"]`, want: result{}},
		{name: "lone quote", give: `"`, want: result{}},
		{name: "unterminated string", give: `"abc`, want: result{}},
		{name: "not a number", give: `1abc`, want: result{}},
		{name: "leading zero", give: `012`, want: result{}},
		{name: "two values", give: `1 2`, want: result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := pusher.UserID(json.RawMessage(tt.give))
			assert.Equal(t, tt.want, result{id, ok})
		})
	}
}
