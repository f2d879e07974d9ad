package scaling

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name string
		give string
		want Envelope
	}{
		{
			name: "every field",
			give: `{"v":1,"kind":"event","app_id":"a","origin":"n1","socket_id":"1.2","payload":{"x":[1,2]}}`,
			want: Envelope{V: 1, Kind: "event", AppID: "a", Origin: "n1", SocketID: "1.2", Payload: json.RawMessage(`{"x":[1,2]}`)},
		},
		{name: "kind only", give: `{"v":1,"kind":"terminate"}`, want: Envelope{V: 1, Kind: "terminate"}},
		{
			name: "a member event's seq",
			give: `{"v":1,"kind":"event","app_id":"a","seq":1795801990474066,"payload":{}}`,
			want: Envelope{V: 1, Kind: "event", AppID: "a", Seq: 1795801990474066, Payload: json.RawMessage(`{}`)},
		},
		{name: "unknown fields are ignored", give: `{"v":1,"kind":"event","later":true}`, want: Envelope{V: 1, Kind: "event"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEnvelope([]byte(tt.give))

			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeEnvelopeRefuses(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{name: "no version", give: `{"kind":"event"}`},
		{name: "a later version", give: `{"v":2,"kind":"event"}`},
		{name: "version as a string", give: `{"v":"1","kind":"event"}`},
		{name: "no kind", give: `{"v":1}`},
		{name: "empty kind", give: `{"v":1,"kind":""}`},
		{name: "kind of the wrong type", give: `{"v":1,"kind":7}`},
		{name: "seq of the wrong type", give: `{"v":1,"kind":"event","seq":"7"}`},
		{name: "negative seq", give: `{"v":1,"kind":"event","seq":-1}`},
		{name: "not JSON", give: `a:1:{s:4:"kind";}`}, // a PHP-serialised Reverb message
		{name: "truncated", give: `{"v":1,"kind":"ev`},
		{name: "an array", give: `[1]`},
		{name: "null", give: `null`},
		{name: "empty", give: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEnvelope([]byte(tt.give))

			assert.ErrorIs(t, err, ErrBadEnvelope)
			assert.Zero(t, got)
		})
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	give := Envelope{V: Version, Kind: "event", AppID: "a", Origin: "n", SocketID: "1.1", Payload: json.RawMessage(`{"k":"v"}`)}

	b, err := json.Marshal(give)
	require.NoError(t, err)
	got, err := DecodeEnvelope(b)

	require.NoError(t, err)
	assert.Equal(t, give, got)
	assert.JSONEq(t, `{"v":1,"kind":"event","app_id":"a","origin":"n","socket_id":"1.1","payload":{"k":"v"}}`, string(b))
}

func TestEnvelopeSeqIsOptional(t *testing.T) {
	tests := []struct {
		name string
		give uint64
		want string
	}{
		{name: "no seq: the envelope of older builds", give: 0, want: `{"v":1,"kind":"event","payload":{}}`},
		{name: "a member event's seq", give: 1795801990474066, want: `{"v":1,"kind":"event","seq":1795801990474066,"payload":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			give := Envelope{V: Version, Kind: "event", Seq: tt.give, Payload: json.RawMessage(`{}`)}

			b, err := json.Marshal(give)
			require.NoError(t, err)
			got, err := DecodeEnvelope(b)

			require.NoError(t, err)
			assert.Equal(t, give, got)
			assert.JSONEq(t, tt.want, string(b))
		})
	}
}
