package pusher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Sign returns the lower-case hex HMAC-SHA256 of message under secret, the
// signature Pusher uses everywhere.
func Sign(secret, message string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(message))
	return hex.EncodeToString(mac.Sum(nil))
}

// ChannelAuthMessage is the string signed to authorise socketID on channel.
// channelData is the presence channel_data, or empty for private channels.
func ChannelAuthMessage(socketID, channel, channelData string) string {
	if channelData == "" {
		return socketID + ":" + channel
	}
	return socketID + ":" + channel + ":" + channelData
}

// ChannelAuth returns the auth value a backend gives a client ("key:signature").
func ChannelAuth(key, secret, socketID, channel, channelData string) string {
	return key + ":" + Sign(secret, ChannelAuthMessage(socketID, channel, channelData))
}

// VerifyChannelAuth reports whether auth is the valid "key:signature" for
// socketID joining channel. The signature is compared in constant time.
func VerifyChannelAuth(key, secret, socketID, channel, channelData, auth string) bool {
	want := ChannelAuth(key, secret, socketID, channel, channelData)
	return hmac.Equal([]byte(want), []byte(auth))
}

// UserAuthMessage is the string signed for pusher:signin.
func UserAuthMessage(socketID, userData string) string {
	return socketID + "::user::" + userData
}

// RequestSigningString is the string Pusher's REST API signs: the method,
// the path (without any server prefix) and the query parameters other than
// auth_signature, with lower-case keys, sorted by key and joined as k=v&k=v
// without URL escaping. When two keys differ only in case, the one spelt in
// lower case wins, else the one that sorts first, so the result never depends
// on map order.
func RequestSigningString(method, path string, params map[string]string) string {
	type param struct{ lower, key, value string }
	ps := make([]param, 0, len(params))
	size := len(method) + len(path) + 2
	for k, v := range params {
		lk := strings.ToLower(k)
		if lk == "auth_signature" {
			continue
		}
		ps = append(ps, param{lk, k, v})
		size += len(lk) + len(v) + 2
	}
	slices.SortFunc(ps, func(a, b param) int {
		if c := strings.Compare(a.lower, b.lower); c != 0 {
			return c
		}
		if aLower, bLower := a.key == a.lower, b.key == b.lower; aLower != bLower {
			if aLower {
				return -1
			}
			return 1
		}
		return strings.Compare(a.key, b.key)
	})
	var b strings.Builder
	b.Grow(size)
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('\n')
	b.WriteString(path)
	b.WriteByte('\n')
	for i, p := range ps {
		if i > 0 && p.lower == ps[i-1].lower {
			continue // a case variant of a key already written
		}
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.lower)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// SignRequest returns the auth_signature of a REST API request.
func SignRequest(secret, method, path string, params map[string]string) string {
	return Sign(secret, RequestSigningString(method, path, params))
}

// EqualSignature compares two hex signatures in constant time.
func EqualSignature(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}
