package harness

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/require"
)

// Process is a Fizz node running as its own process, so a test can kill it
// without warning (SIGKILL) as a crash or an OOM kill would.
type Process struct {
	Addr    string
	HTTPURL string
	Pusher  *pusherhttp.Client
	HTTP    *http.Client

	cmd    *exec.Cmd
	done   chan struct{}
	output *SyncBuffer
	once   sync.Once
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// RemoveBinary deletes the fizz command built for this test binary; call
// it from TestMain once the tests have run.
func RemoveBinary() {
	if binary != "" {
		_ = os.RemoveAll(filepath.Dir(binary)) // a temporary directory; nothing to report
	}
}

// Binary returns the fizz command, built once per test binary.
func Binary(t testing.TB) string { return fizzBinary(t) }

// fizzBinary builds the fizz command once per test binary.
func fizzBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fizz-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "fizz")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binary, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{out: string(out), err: err}
		}
	})
	require.NoError(t, buildErr, "go build of the fizz command")
	return binary
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// StartProcess starts a node process with the test app's credentials on a
// free loopback port; env adds to or overrides its environment (for
// example FIZZ_SCALING_ENABLED and REDIS_URL). The node is killed when t
// ends if it still runs.
func StartProcess(t testing.TB, env map[string]string) *Process {
	t.Helper()
	port := FreePort(t)
	vars := map[string]string{
		"FIZZ_SERVER_HOST":  "127.0.0.1",
		"FIZZ_SERVER_PORT":  strconv.Itoa(port),
		"FIZZ_APP_ID":       AppID,
		"FIZZ_APP_KEY":      AppKey,
		"FIZZ_APP_SECRET":   AppSecret,
		"FIZZ_METRICS_PORT": "0",
		"FIZZ_LOG_FORMAT":   "text",
	}
	for k, v := range env {
		vars[k] = v
	}
	if p, err := strconv.Atoi(vars["FIZZ_SERVER_PORT"]); err == nil && p != port {
		port = p // the caller's own port
	}
	cmd := exec.Command(fizzBinary(t))
	// The node dies with the test binary, even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), output: &SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	require.NoError(t, cmd.Start(), "start fizz")
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("fizz process %s output:\n%s", p.Addr, p.output.String())
		}
	})

	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.HTTPURL = "http://" + p.Addr
	p.HTTP = &http.Client{Timeout: 10 * time.Second}
	p.Pusher = &pusherhttp.Client{AppID: AppID, Key: AppKey, Secret: AppSecret, Host: p.Addr, HTTPClient: p.HTTP}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := p.HTTP.Get(p.HTTPURL + "/up")
		if err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case <-p.done:
			require.FailNow(t, "fizz exited at start", "output:\n%s", p.output.String())
		case <-time.After(20 * time.Millisecond): // polling a child process's start-up
		}
		require.True(t, time.Now().Before(deadline), "fizz on %s did not start: %v\n%s", p.Addr, err, p.output.String())
	}
}

// WSURL returns the node's WebSocket URL for the test app.
func (p *Process) WSURL() string {
	return "ws://" + p.Addr + "/app/" + AppKey + "?protocol=7&client=js&version=8.4.0"
}

// Pid returns the process id of the node.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill ends the process with SIGKILL and waits for it: no socket is
// closed, no lease released.
func (p *Process) Kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL) // already gone is fine
	})
	<-p.done
}

// Terminate sends SIGTERM and waits at most timeout for the exit; it
// returns the exit code, or -1 if the process had to be killed.
func (p *Process) Terminate(timeout time.Duration) int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // already gone is fine
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.Kill()
		return -1
	}
}

// Output returns what the process logged so far.
func (p *Process) Output() string { return p.output.String() }

// SyncBuffer is a bytes.Buffer that several goroutines may write and read
// at once: a process's output, for one. Its zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
