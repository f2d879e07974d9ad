package pusher_test

import (
	"encoding/json"
	"testing"

	"github.com/fizz-server/fizz/modules/pusher"
)

// Sinks keep results alive so the compiler cannot drop the calls.
var (
	frameSink  pusher.Frame
	bytesSink  []byte
	stringSink string
)

func BenchmarkParseFrame(b *testing.B) {
	frame := []byte(`{"event":"client-typing","channel":"private-chat.42","data":{"user":"alice","typing":true,"at":1718000000}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		f, err := pusher.ParseFrame(frame)
		if err != nil {
			b.Fatal(err)
		}
		frameSink = f
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	data := json.RawMessage(`"{\"message\":\"hello, world\",\"id\":12345}"`)
	b.ReportAllocs()
	for b.Loop() {
		bytesSink = pusher.EncodeEvent("App\\Events\\MessageSent", "private-chat.42", data, "")
	}
}

func BenchmarkVerifyChannelAuth(b *testing.B) {
	const (
		key, secret = "278d425bdf160c739803", "7ad3773142a6692b25b8"
		socketID    = "1234.1234"
		channel     = "presence-foobar"
		channelData = `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`
	)
	auth := pusher.ChannelAuth(key, secret, socketID, channel, channelData)
	b.ReportAllocs()
	for b.Loop() {
		if !pusher.VerifyChannelAuth(key, secret, socketID, channel, channelData, auth) {
			b.Fatal("valid auth refused")
		}
	}
}

func BenchmarkSignRequest(b *testing.B) {
	params := map[string]string{
		"auth_key":       "278d425bdf160c739803",
		"auth_timestamp": "1353088179",
		"auth_version":   "1.0",
		"body_md5":       "ec365a775a4cd0599faeb73354201b6f",
		"auth_signature": "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
	}
	b.ReportAllocs()
	for b.Loop() {
		stringSink = pusher.SignRequest("7ad3773142a6692b25b8", "POST", "/apps/3/events", params)
	}
}
