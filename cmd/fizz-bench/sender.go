package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// senderEnv set to "1" makes fizz-bench the trigger sender that
// -trigger-process starts: it reads jobs on stdin and answers on stdout.
const senderEnv = "FIZZ_BENCH_SENDER"

// errSenderGone answers the jobs the sender process can no longer take.
var errSenderGone = errors.New("the trigger sender process is gone")

// route returns where event seq is triggered and on which channel.
func (r *run) route(seq int) (target, channel string) {
	target = r.cfg.Targets[0]
	if r.cfg.Trigger == "rr" {
		target = r.cfg.Targets[seq%len(r.cfg.Targets)]
	}
	return target, r.channelName(seq % r.cfg.Channels)
}

// startSenders runs cfg.Concurrency trigger senders that take jobs and
// answer each on answers: in this process, or with -trigger-process in a
// process of their own, whose HTTP client then does not wait behind this
// process's socket readers. wait returns once jobs is closed and every job
// is answered; pid is the sender process (0: none).
func (r *run) startSenders(ctx context.Context, jobs <-chan job, answers chan<- answer) (wait func(), pid int, err error) {
	if r.cfg.TriggerProcess {
		return r.startSenderProcess(ctx, jobs, answers)
	}
	t := newTrigger(r.cfg)
	var workers sync.WaitGroup
	for range r.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				target, channel := r.route(j.seq)
				answers <- answer{j.seq, t.send(ctx, target, channel, j.seq, j.ts)}
			}
		}()
	}
	return func() { workers.Wait(); t.close() }, 0, nil
}

// startSenderProcess starts this program again as the trigger sender,
// with the same flags.
func (r *run) startSenderProcess(ctx context.Context, jobs <-chan job, answers chan<- answer) (func(), int, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, 0, fmt.Errorf("-trigger-process: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, r.cfg.args...)
	cmd.Env = append(os.Environ(), senderEnv+"=1")
	cmd.Stderr = os.Stderr // the sender writes only when it cannot start
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, fmt.Errorf("-trigger-process: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, fmt.Errorf("-trigger-process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("-trigger-process: %w", err)
	}
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() {
		defer pipes.Done()
		defer stdin.Close() // the sender ends once it has answered everything
		w := bufio.NewWriter(stdin)
		gone := false
		for j := range jobs {
			if !gone {
				target, channel := r.route(j.seq)
				fmt.Fprintf(w, "%d %d %s %s\n", j.seq, j.ts, target, channel)
				gone = w.Flush() != nil
			}
			if gone {
				answers <- answer{j.seq, errSenderGone}
			}
		}
	}()
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := parseAnswer(sc.Text()); ok {
				answers <- a
			}
		}
	}()
	return func() { pipes.Wait(); _ = cmd.Wait() }, cmd.Process.Pid, nil
}

// parseAnswer reads a sender's answer line: "SEQ ok" or "SEQ err MESSAGE".
func parseAnswer(line string) (answer, bool) {
	seqText, rest, _ := strings.Cut(line, " ")
	seq, err := strconv.Atoi(seqText)
	if err != nil || seq < 0 {
		return answer{}, false
	}
	if rest == "ok" {
		return answer{seq: seq}, true
	}
	msg, ok := strings.CutPrefix(rest, "err ")
	if !ok {
		return answer{}, false
	}
	return answer{seq: seq, err: errors.New(msg)}, true
}

// runSender is the trigger sender: it sends each job read on in ("SEQ TS
// TARGET CHANNEL") with cfg.Concurrency requests in flight at most and
// answers each on out, until in ends.
func runSender(ctx context.Context, args []string, in io.Reader, out, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "fizz-bench sender:", err)
		return exitFlags
	}
	t := newTrigger(&cfg)
	defer t.close()
	type senderJob struct {
		seq             int
		ts              int64
		target, channel string
	}
	jobs := make(chan senderJob)
	var mu sync.Mutex
	w := bufio.NewWriter(out)
	var workers sync.WaitGroup
	for range cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				line := strconv.Itoa(j.seq) + " ok\n"
				if err := t.send(ctx, j.target, j.channel, j.seq, j.ts); err != nil {
					line = strconv.Itoa(j.seq) + " err " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
				}
				mu.Lock()
				_, _ = w.WriteString(line)
				_ = w.Flush() // the parent is gone when this fails: nothing to do
				mu.Unlock()
			}
		}()
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 {
			continue
		}
		seq, err1 := strconv.Atoi(f[0])
		ts, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || checkLoopback(f[2]) != nil {
			continue
		}
		jobs <- senderJob{seq, ts, f[2], f[3]}
	}
	close(jobs)
	workers.Wait()
	return exitOK
}
