package storage

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

func TestTextMatches(t *testing.T) {
	cases := []struct {
		text, phrase string
		want         bool
	}{
		{"Payment gateway TIMEOUT, retrying", "timeout", true},
		{"Payment gateway TIMEOUT, retrying", "time", false},
		{"connection refused by db", "Connection Refused", true},
		{"connection was refused", "connection refused", false},
		{"用户登录失败：密码错误", "登录", true},
		{"用户登录失败：密码错误", "录登", false},
		{"订单服务 order-42 完成", "order 42", true},
		{"anything", "!!!", true},
	}
	for _, c := range cases {
		if got := TextMatches(c.text, c.phrase); got != c.want {
			t.Errorf("TextMatches(%q, %q) = %v", c.text, c.phrase, got)
		}
	}
}

func TestLogQueryMatches(t *testing.T) {
	lr := plog.NewLogRecord()
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.Body().SetStr(`{"requestId":"r-1","statusCode":500,"method":"POST"}`)
	lr.Attributes().PutStr("http.route", "/orders")
	res := pcommon.NewResource()
	res.Attributes().PutStr("host.name", "n1")
	r := LogRecord{Service: "api", Resource: res, Record: lr}
	for _, c := range []struct {
		q    LogQuery
		want bool
	}{
		{LogQuery{Service: "api", MinSeverity: 17}, true},
		{LogQuery{MinSeverity: 21}, false},
		{LogQuery{Attributes: map[string]string{"statusCode": "500", "method": "POST", "http.route": "/orders", "host.name": "n1"}}, true},
		{LogQuery{Attributes: map[string]string{"statusCode": "200"}}, false},
		{LogQuery{Text: []string{"r", "1"}}, true},
		{LogQuery{TraceID: pcommon.TraceID{1}}, false},
	} {
		if got := c.q.Matches(r); got != c.want {
			t.Errorf("%+v: %v", c.q, got)
		}
	}
}
