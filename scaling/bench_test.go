package scaling

import (
	"encoding/json"
	"testing"
)

// BenchmarkEnvelopeEncode measures encoding an event envelope as it goes
// to Redis.
func BenchmarkEnvelopeEncode(b *testing.B) {
	e := Envelope{V: Version, Kind: "event", AppID: "app-id", Origin: "9f2c1a7e3b5d4c60", SocketID: "123456.654321",
		Payload: json.RawMessage(`{"channels":["presence-room"],"event":"message","data":"{\"text\":\"hello, world\",\"n\":42}"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopeDecode measures decoding and checking an envelope
// received from another node.
func BenchmarkEnvelopeDecode(b *testing.B) {
	raw := []byte(`{"v":1,"kind":"event","app_id":"app-id","origin":"9f2c1a7e3b5d4c60","socket_id":"123456.654321",` +
		`"payload":{"channels":["presence-room"],"event":"message","data":"{\"text\":\"hello, world\",\"n\":42}"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEnvelope(raw); err != nil {
			b.Fatal(err)
		}
	}
}
