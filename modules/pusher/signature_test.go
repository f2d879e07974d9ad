package pusher_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fizz-server/fizz/modules/pusher"
)

// The credentials of Pusher's worked examples
// (https://pusher.com/docs/channels/library_auth_reference/auth-signatures/
// and the HTTP API reference).
const (
	docKey      = "278d425bdf160c739803"
	docSecret   = "7ad3773142a6692b25b8"
	docSocketID = "1234.1234"

	// docPresenceData is the channel_data of Pusher's presence example, as
	// the server libraries' own tests (pusher-http-java, pusher-http-php,
	// Haskell pusher-http) reproduce it. Its published signature afaed369…
	// is over this exact text; with "Mr. Channels" instead of "Mr. Pusher"
	// the signature is a different one (see channelsPresenceData).
	docPresenceData = `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`
	// channelsPresenceData is the example reworded with "Mr. Channels". Its
	// signature, 31935e7d…, was computed here with crypto/hmac; it is not a
	// published vector.
	channelsPresenceData = `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`
)

func TestSign(t *testing.T) {
	type give struct{ secret, message string }
	tests := []struct {
		name string
		give give
		want string
	}{
		{
			name: "RFC 4231 test case 2",
			give: give{"Jefe", "what do ya want for nothing?"},
			want: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		},
		{
			name: "Pusher private channel example",
			give: give{docSecret, "1234.1234:private-foobar"},
			want: "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
		},
		{
			name: "Pusher user authentication example",
			give: give{docSecret, `1234.1234::user::{"id":"12345"}`},
			want: "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, pusher.Sign(tt.give.secret, tt.give.message))
		})
	}
}

func TestChannelAuthMessage(t *testing.T) {
	type give struct{ socketID, channel, channelData string }
	tests := []struct {
		name string
		give give
		want string
	}{
		{
			name: "private",
			give: give{docSocketID, "private-foobar", ""},
			want: "1234.1234:private-foobar",
		},
		{
			name: "presence",
			give: give{docSocketID, "presence-foobar", docPresenceData},
			want: "1234.1234:presence-foobar:" + docPresenceData,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, pusher.ChannelAuthMessage(tt.give.socketID, tt.give.channel, tt.give.channelData))
		})
	}
}

func TestChannelAuth(t *testing.T) {
	type give struct{ channel, channelData string }
	tests := []struct {
		name string
		give give
		want string
	}{
		{
			name: "Pusher private channel example",
			give: give{"private-foobar", ""},
			want: docKey + ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
		},
		{
			name: "Pusher presence channel example",
			give: give{"presence-foobar", docPresenceData},
			want: docKey + ":afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
		},
		{
			// Computed with crypto/hmac, not published: see channelsPresenceData.
			name: "presence channel example as the newer page words it",
			give: give{"presence-foobar", channelsPresenceData},
			want: docKey + ":31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
		},
		{
			name: "encrypted channel signs like a private one",
			give: give{"private-encrypted-foobar", ""},
			want: docKey + ":" + pusher.Sign(docSecret, "1234.1234:private-encrypted-foobar"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, pusher.ChannelAuth(docKey, docSecret, docSocketID, tt.give.channel, tt.give.channelData))
		})
	}
}

func TestVerifyChannelAuth(t *testing.T) {
	const (
		privateAuth  = docKey + ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
		presenceAuth = docKey + ":afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
	)
	type give struct{ key, socketID, channel, channelData, auth string }
	tests := []struct {
		name string
		give give
		want bool
	}{
		{name: "private", give: give{docKey, docSocketID, "private-foobar", "", privateAuth}, want: true},
		{name: "presence", give: give{docKey, docSocketID, "presence-foobar", docPresenceData, presenceAuth}, want: true},

		{name: "other socket", give: give{docKey, "1234.1235", "private-foobar", "", privateAuth}, want: false},
		{name: "other channel", give: give{docKey, docSocketID, "private-foobaz", "", privateAuth}, want: false},
		{name: "private auth on a presence channel", give: give{docKey, docSocketID, "presence-foobar", docPresenceData, privateAuth}, want: false},
		{name: "channel_data changed", give: give{docKey, docSocketID, "presence-foobar", `{"user_id":11,"user_info":{"name":"Mr. Pusher"}}`, presenceAuth}, want: false},
		{name: "channel_data reformatted", give: give{docKey, docSocketID, "presence-foobar", `{"user_id": 10, "user_info": {"name": "Mr. Pusher"}}`, presenceAuth}, want: false},
		{name: "channel_data dropped", give: give{docKey, docSocketID, "presence-foobar", "", presenceAuth}, want: false},
		{name: "other app key", give: give{"other-key", docSocketID, "private-foobar", "", privateAuth}, want: false},
		{name: "signature without the key", give: give{docKey, docSocketID, "private-foobar", "", privateAuth[len(docKey)+1:]}, want: false},
		{name: "upper-case hex", give: give{docKey, docSocketID, "private-foobar", "", docKey + ":58DF8B0C36D6982B82C3ECF6B4662E34FE8C25BBA48F5369F135BF843651C3A4"}, want: false},
		{name: "truncated signature", give: give{docKey, docSocketID, "private-foobar", "", privateAuth[:len(privateAuth)-1]}, want: false},
		{name: "trailing character", give: give{docKey, docSocketID, "private-foobar", "", privateAuth + "0"}, want: false},
		{name: "empty", give: give{docKey, docSocketID, "private-foobar", "", ""}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pusher.VerifyChannelAuth(tt.give.key, docSecret, tt.give.socketID, tt.give.channel, tt.give.channelData, tt.give.auth)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestUserAuthMessage(t *testing.T) {
	got := pusher.UserAuthMessage(docSocketID, `{"id":"12345"}`)
	assert.Equal(t, `1234.1234::user::{"id":"12345"}`, got)
	// Pusher's user authentication example.
	assert.Equal(t, "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba", pusher.Sign(docSecret, got))
}

// The parameters of the trigger example in Pusher's HTTP API reference: body
// {"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}.
func docTriggerParams() map[string]string {
	return map[string]string{
		"auth_key":       docKey,
		"auth_timestamp": "1353088179",
		"auth_version":   "1.0",
		"body_md5":       "ec365a775a4cd0599faeb73354201b6f",
	}
}

func TestRequestSigningString(t *testing.T) {
	type give struct {
		method, path string
		params       map[string]string
	}
	tests := []struct {
		name string
		give give
		want string
	}{
		{
			name: "Pusher trigger example",
			give: give{"POST", "/apps/3/events", docTriggerParams()},
			want: "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f",
		},
		{
			name: "auth_signature is left out",
			give: give{"POST", "/apps/3/events", map[string]string{
				"auth_key": "k", "auth_signature": "s", "auth_timestamp": "1", "auth_version": "1.0", "body_md5": "m",
			}},
			want: "POST\n/apps/3/events\nauth_key=k&auth_timestamp=1&auth_version=1.0&body_md5=m",
		},
		{
			name: "keys sorted",
			give: give{"GET", "/apps/3/channels", map[string]string{
				"info": "user_count", "filter_by_prefix": "presence-", "auth_version": "1.0", "auth_key": "k", "auth_timestamp": "1",
			}},
			want: "GET\n/apps/3/channels\nauth_key=k&auth_timestamp=1&auth_version=1.0&filter_by_prefix=presence-&info=user_count",
		},
		{
			name: "keys lower-cased, method upper-cased, values kept",
			give: give{"get", "/apps/3/channels/presence-a", map[string]string{
				"AUTH_KEY": "K", "Info": "user_count,subscription_count", "AUTH_SIGNATURE": "s",
			}},
			want: "GET\n/apps/3/channels/presence-a\nauth_key=K&info=user_count,subscription_count",
		},
		{
			name: "values are not escaped",
			give: give{"GET", "/apps/3/channels", map[string]string{"filter_by_prefix": "a b&c=d"}},
			want: "GET\n/apps/3/channels\nfilter_by_prefix=a b&c=d",
		},
		{
			name: "no parameters",
			give: give{"GET", "/apps/3/channels", nil},
			want: "GET\n/apps/3/channels\n",
		},
		{
			name: "case variants of one key: the lower-case one wins",
			give: give{"GET", "/p", map[string]string{"INFO": "a", "info": "b", "Info": "c"}},
			want: "GET\n/p\ninfo=b",
		},
		{
			name: "case variants of one key: otherwise the first in order wins",
			give: give{"GET", "/p", map[string]string{"Info": "c", "INFO": "a", "iNFO": "d"}},
			want: "GET\n/p\ninfo=a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, pusher.RequestSigningString(tt.give.method, tt.give.path, tt.give.params))
		})
	}
}

func TestRequestSigningStringIsDeterministic(t *testing.T) {
	// Map order is random; many tries would catch a result that follows it.
	params := map[string]string{"A": "1", "a": "2", "b": "3", "B": "4", "C": "5", "c_": "6", "D": "7", "d": "8"}
	want := "GET\n/p\na=2&b=3&c=5&c_=6&d=8"
	for range 200 {
		assert.Equal(t, want, pusher.RequestSigningString("GET", "/p", params))
	}
}

func TestSignRequest(t *testing.T) {
	type give struct {
		method, path string
		params       map[string]string
	}
	tests := []struct {
		name string
		give give
		want string
	}{
		{
			name: "Pusher trigger example",
			give: give{"POST", "/apps/3/events", docTriggerParams()},
			want: "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
		},
		// The next three are the auth_signature that
		// github.com/pusher/pusher-http-go/v5 v5.1.1 put on its requests: a
		// scratch module called Client{AppID: "3", Key: docKey, Secret:
		// docSecret} with an http.RoundTripper that printed each request's
		// query; the parameters below are that query less auth_signature.
		{
			name: "pusher-http-go Trigger(\"project-3\", \"foo\", {\"some\":\"data\"})",
			give: give{"POST", "/apps/3/events", map[string]string{
				"auth_key":       docKey,
				"auth_timestamp": "1795792521",
				"auth_version":   "1.0",
				"body_md5":       "fb46e511627c26ab33a0a20880c10de7",
				"auth_signature": "cda1310438c22de190770c9d0ac13e969647221ba4a89407119affb1e99ddc26",
			}},
			want: "cda1310438c22de190770c9d0ac13e969647221ba4a89407119affb1e99ddc26",
		},
		{
			name: "pusher-http-go Channels(filter_by_prefix, info)",
			give: give{"GET", "/apps/3/channels", map[string]string{
				"auth_key":         docKey,
				"auth_timestamp":   "1795792521",
				"auth_version":     "1.0",
				"filter_by_prefix": "presence-",
				"info":             "user_count",
			}},
			want: "491cf3a82878cf9f33c615e136b7032d1a933e4e8b7e5c05c3d60caef69ca8d3",
		},
		{
			name: "pusher-http-go Channel with a comma in info",
			give: give{"GET", "/apps/3/channels/presence-foobar", map[string]string{
				"auth_key":       docKey,
				"auth_timestamp": "1795792528",
				"auth_version":   "1.0",
				"info":           "user_count,subscription_count",
			}},
			want: "42fb3e76ef816338731e9fffe9d2cb11ce6b18de5862a8facd277f1bb5004cb9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, pusher.SignRequest(docSecret, tt.give.method, tt.give.path, tt.give.params))
		})
	}
}

func TestEqualSignature(t *testing.T) {
	const sig = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
	type give struct{ a, b string }
	tests := []struct {
		name string
		give give
		want bool
	}{
		{name: "equal", give: give{sig, sig}, want: true},
		{name: "both empty", give: give{"", ""}, want: true},
		{name: "one character differs", give: give{sig, sig[:63] + "d"}, want: false},
		{name: "prefix", give: give{sig, sig[:63]}, want: false},
		{name: "upper case", give: give{sig, "DA454824C97BA181A32CCC17A72625BA02771F50B50E1E7430E47A1F3F457E6C"}, want: false},
		{name: "one empty", give: give{sig, ""}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, pusher.EqualSignature(tt.give.a, tt.give.b))
		})
	}
}
