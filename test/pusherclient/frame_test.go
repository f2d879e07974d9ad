package pusherclient

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeFrame(t *testing.T) {
	type want struct {
		Event, Channel, UserID, Data, Text string
	}
	tests := []struct {
		name   string
		give   string
		binary bool
		want   want
	}{
		{
			name: "server event with string data",
			give: `{"event":"e","channel":"c","data":"{\"a\":1}"}`,
			want: want{Event: "e", Channel: "c", Data: `"{\"a\":1}"`, Text: `{"a":1}`},
		},
		{
			name: "client event with object data and a user id",
			give: `{"event":"client-x","channel":"presence-a","data":{"n":1},"user_id":"10"}`,
			want: want{Event: "client-x", Channel: "presence-a", UserID: "10", Data: `{"n":1}`, Text: `{"n":1}`},
		},
		{
			name: "numeric user id keeps its text",
			give: `{"event":"e","user_id":10}`,
			want: want{Event: "e", UserID: "10"},
		},
		{
			name: "not JSON",
			give: `hello`,
		},
		{
			name:   "binary",
			give:   `{"event":"e"}`,
			binary: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := DecodeFrame(tt.binary, []byte(tt.give))
			got := want{Event: f.Event, Channel: f.Channel, UserID: f.UserID, Data: string(f.Data), Text: f.Text()}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.give, string(f.Raw))
			assert.Equal(t, tt.binary, f.Binary)
		})
	}
}

func TestFrameErrors(t *testing.T) {
	f := DecodeFrame(false, []byte(`{"event":"pusher:error","data":{"code":4200,"message":"bad"}}`))
	e, err := f.PusherError()
	require.NoError(t, err)
	assert.Equal(t, ErrorData{Code: 4200, Message: "bad"}, e)

	f = DecodeFrame(false, []byte(`{"event":"pusher:subscription_error","channel":"private-a","data":"{\"type\":\"AuthError\",\"error\":\"no\",\"status\":401}"}`))
	s, err := f.SubscriptionError()
	require.NoError(t, err)
	assert.Equal(t, SubscriptionError{Type: "AuthError", Error: "no", Status: 401}, s)

	var v map[string]any
	assert.Error(t, DecodeFrame(false, []byte(`{"event":"e","data":"not json"}`)).DecodeData(&v))
}

func TestFramePresenceList(t *testing.T) {
	f := DecodeFrame(false, []byte(`{"event":"pusher_internal:subscription_succeeded","channel":"presence-a",`+
		`"data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":null,\"2\":{\"name\":\"Two\"}},\"count\":2}}"}`))
	p, err := f.PresenceList()
	require.NoError(t, err)
	assert.Equal(t, []string{"1", "2"}, p.Presence.IDs)
	assert.Equal(t, 2, p.Presence.Count)
	assert.JSONEq(t, `{"name":"Two"}`, string(p.Presence.Hash["2"]))

	_, err = DecodeFrame(false, []byte(`{"event":"e","data":{"presence":{"ids":[1]}}}`)).PresenceList()
	assert.Error(t, err, "a numeric id")
}
