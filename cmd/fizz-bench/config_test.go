package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		give    string
		wantErr bool
	}{
		{give: "127.0.0.1:8080"},
		{give: "127.0.0.9:1"},
		{give: "[::1]:8080"},
		{give: "localhost:8080"},
		{give: "10.0.0.1:8080", wantErr: true},
		{give: "example.com:80", wantErr: true},
		{give: "0.0.0.0:8080", wantErr: true},
		{give: "127.0.0.1", wantErr: true},
		{give: "127.0.0.1:0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			err := checkLoopback(tt.give)
			if tt.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		give    []string
		wantErr string
	}{
		{name: "defaults", give: nil},
		{name: "cluster", give: []string{"-targets", "127.0.0.1:1, 127.0.0.1:2", "-trigger", "rr", "-pid", "1,2", "-sources", "4"}},
		{name: "remote target", give: []string{"-targets", "192.168.1.2:80"}, wantErr: "not a loopback address"},
		{name: "sources need IPv4", give: []string{"-targets", "[::1]:80", "-sources", "2"}, wantErr: "IPv4"},
		{name: "too many sources", give: []string{"-sources", "300"}, wantErr: "-sources"},
		{name: "more channels than sockets", give: []string{"-n", "2", "-c", "3"}, wantErr: "-c 3"},
		{name: "payload too small", give: []string{"-payload", "10"}, wantErr: "-payload"},
		{name: "payload too large", give: []string{"-payload", "20000"}, wantErr: "-payload"},
		{name: "bad pid", give: []string{"-pid", "x"}, wantErr: "-pid"},
		{name: "bad trigger", give: []string{"-trigger", "all"}, wantErr: "-trigger"},
		{name: "too many records", give: []string{"-n", "19000", "-events", "100000"}, wantErr: "receipts"},
		{name: "odd channel prefix", give: []string{"-channel-prefix", "a b"}, wantErr: "-channel-prefix"},
		{name: "stray argument", give: []string{"extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.give, &bytes.Buffer{})
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestFileLimitRefusesTooManySockets(t *testing.T) {
	err := checkFileLimit(1<<30, 4)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "RLIMIT_NOFILE")
	assert.NoError(t, checkFileLimit(10, 4))
}

func TestRunMainExitStatus(t *testing.T) {
	var out, errs bytes.Buffer
	assert.Equal(t, exitFlags, runMain([]string{"-targets", "8.8.8.8:80"}, &out, &errs))
	assert.Contains(t, errs.String(), "loopback")
	assert.Equal(t, exitOK, runMain([]string{"-h"}, &out, &errs))
}
