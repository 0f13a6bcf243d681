package messages

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

func TestProgressRoundTrip(t *testing.T) {
	in := Progress{Version: Version, Run: "r1", Task: "copy-media-0001", Bytes: 12345}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeProgress(b)
	if err != nil || *out != in {
		t.Fatalf("decoded %+v, %v; want %+v", out, err, in)
	}
}

func TestDecodeProgressRefusesBadMessages(t *testing.T) {
	cases := []struct{ name, msg, want string }{
		{"not json", "{", "decode progress"},
		{"other version", `{"v":99,"run":"r","task":"t","bytes":1}`, "wire version 99"},
		{"bad run", `{"v":2,"run":"a.b","task":"t","bytes":1}`, `bad run "a.b"`},
		{"no task", `{"v":2,"run":"r","bytes":1}`, `task ""`},
		{"negative bytes", `{"v":2,"run":"r","task":"t","bytes":-1}`, "bytes -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeProgress([]byte(tc.msg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Progress is core NATS only: a stream capturing it would store every message.
func TestProgressSubjectOutsideStreams(t *testing.T) {
	subj := ProgressSubject("r1")
	if subj != "wnb.progress.r1" {
		t.Fatalf("subject %q", subj)
	}
	for _, filter := range []string{TasksSubjects, ResultsSubjects} {
		if server.SubjectsCollide(subj, filter) {
			t.Fatalf("progress subject %q is captured by the stream filter %q", subj, filter)
		}
	}
}
