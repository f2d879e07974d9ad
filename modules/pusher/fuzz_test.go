package pusher_test

import (
	"encoding/json"
	"regexp"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
)

// The seed corpora are in testdata/fuzz/<FuzzName>/.

func FuzzParseFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, err := pusher.ParseFrame(b)
		if err != nil {
			var pe *pusher.Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, pusher.CodeGeneric, pe.Code)
			assert.False(t, pe.Fatal)
			return
		}
		require.NotEmpty(t, frame.Event)
		require.True(t, json.Valid(b), "accepted invalid JSON %q", b)
		require.True(t, utf8.Valid(b), "accepted invalid UTF-8 %q", b)

		encoded := pusher.EncodeEvent(frame.Event, frame.Channel, frame.Data, "")
		require.True(t, json.Valid(encoded), "%q", encoded)
		require.True(t, utf8.Valid(encoded), "%q", encoded)
		again, err := pusher.ParseFrame(encoded)
		require.NoError(t, err)
		require.Equal(t, frame, again)
	})
}

func FuzzParseSubscription(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := pusher.ParseSubscription(data)
		if err != nil {
			var pe *pusher.Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, pusher.CodeGeneric, pe.Code)
			return
		}
		require.NotEmpty(t, s.Channel)
		require.True(t, utf8.ValidString(s.Channel+s.Auth+s.ChannelData))

		// The same subscription sent as a plain object parses the same.
		object, err := json.Marshal(map[string]string{"channel": s.Channel, "auth": s.Auth, "channel_data": s.ChannelData})
		require.NoError(t, err)
		again, err := pusher.ParseSubscription(object)
		require.NoError(t, err)
		require.Equal(t, s, again)

		_, _ = pusher.ParseChannelData(s.ChannelData) // must not panic
	})
}

func FuzzParseChannelData(f *testing.F) {
	f.Fuzz(func(t *testing.T, channelData string) {
		m, err := pusher.ParseChannelData(channelData)
		if err != nil {
			var pe *pusher.Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, pusher.CodeGeneric, pe.Code)
			return
		}
		require.NotEmpty(t, m.UserID)
		require.True(t, utf8.ValidString(m.UserID))
		require.True(t, m.UserInfo == nil || json.Valid(m.UserInfo), "%q", m.UserInfo)

		// A member's info is relayed in member_added; it must encode.
		encoded := pusher.EncodeEvent(pusher.EventMemberAdded, "presence-a", m.UserInfo, m.UserID)
		require.True(t, json.Valid(encoded), "%q", encoded)
	})
}

func FuzzAppendString(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		encoded := pusher.AppendString([]byte("x"), s)
		require.Equal(t, byte('x'), encoded[0])
		encoded = encoded[1:]
		require.True(t, json.Valid(encoded), "%q", encoded)
		require.True(t, utf8.Valid(encoded), "%q", encoded)

		var got string
		require.NoError(t, json.Unmarshal(encoded, &got))
		// encoding/json turns each invalid byte into U+FFFD, as AppendString
		// does; valid UTF-8 comes back unchanged.
		require.Equal(t, asJSONString(t, s), got)

		event := pusher.EncodeEvent(s, s, json.RawMessage(encoded), s)
		require.True(t, json.Valid(event), "%q", event)
	})
}

// validChannelName is ValidChannelName's rule as a regular expression.
var validChannelName = regexp.MustCompile(`^(#server-to-user-)?[A-Za-z0-9_\-=@,.;]+$`)

func FuzzValidChannelName(f *testing.F) {
	f.Fuzz(func(t *testing.T, name string) {
		valid := pusher.ValidChannelName(name)
		_ = pusher.KindOf(name) // must not panic
		want := len(name) >= 1 && len(name) <= pusher.MaxChannelNameLength && validChannelName.MatchString(name)
		require.Equal(t, want, valid, "%q", name)
		if !valid {
			return
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			allowed := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
				c == '_' || c == '-' || c == '=' || c == '@' || c == ',' || c == '.' || c == ';' ||
				c == '#' && i == 0
			require.True(t, allowed, "byte %#02x at %d in %q", c, i, name)
		}
	})
}
