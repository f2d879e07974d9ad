package apps

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOriginAllowed(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		origin   string
		want     bool
	}{
		{"no origin header", []string{"app.test"}, "", true},
		{"any", []string{"*"}, "https://x.test", true},
		{"host", []string{"app.test"}, "https://app.test", true},
		{"host, origin with port", []string{"app.test"}, "http://app.test:3000", true},
		{"host and port", []string{"app.test:3000"}, "http://app.test:3000", true},
		{"other port", []string{"app.test:3000"}, "http://app.test:4000", false},
		{"other host", []string{"app.test"}, "https://evil.test", false},
		{"suffix is not a host", []string{"app.test"}, "https://evilapp.test", false},
		{"case", []string{"App.Test"}, "HTTPS://APP.TEST", true},
		{"glob", []string{"*.app.test"}, "https://a.b.app.test", true},
		{"glob needs a subdomain", []string{"*.app.test"}, "https://app.test", false},
		{"full URL stands for its host", []string{"http://app.test:3000"}, "http://app.test:3000", true},
		{"full URL with a path", []string{"https://app.test/"}, "https://app.test", true},
		{"full URL keeps its port", []string{"http://app.test:3000"}, "http://app.test:4000", false},
		{"second pattern", []string{"a.test", " b.test "}, "https://b.test", true},
		{"ipv6", []string{"[::1]"}, "http://[::1]:8080", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &App{AllowedOrigins: tt.patterns}
			assert.Equal(t, tt.want, a.OriginAllowed(tt.origin))
		})
	}
}
