package robots_test

import (
	"fmt"
	"log"
	"net/url"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/template"

	"github.com/vigil-obs/vigil/alerting/notify/robots"
)

// Robots are built next to Alertmanager's own receivers: Split takes the
// robot configs out, Alertmanager loads the rest, and each receiver gets
// Alertmanager's integrations followed by the robots'.
func Example() {
	raw := []byte(`
route:
  receiver: oncall-cn
receivers:
  - name: oncall-cn
    webhook_configs:
      - url: http://127.0.0.1:9000/hook
    feishu_configs:
      - webhook_url: https://open.feishu.cn/open-apis/bot/v2/hook/xxxx
        secret: s3cret
    wecom_robot_configs:
      - webhook_url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=xxxx
`)
	rest, bots, err := robots.Split(raw)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := config.Load(string(rest))
	if err != nil {
		log.Fatal(err)
	}
	tmpl, err := template.FromGlobs(cfg.Templates)
	if err != nil {
		log.Fatal(err)
	}
	tmpl.ExternalURL, _ = url.Parse("https://vigil.example.com")

	limiters := robots.NewLimiters(nil) // shared by every receiver
	for _, rc := range cfg.Receivers {
		ints, err := receiver.BuildReceiverIntegrations(rc, tmpl, nil)
		if err != nil {
			log.Fatal(err)
		}
		more, err := bots[rc.Name].Integrations(rc.Name, len(ints), tmpl, robots.Options{Limiter: limiters})
		if err != nil {
			log.Fatal(err)
		}
		for _, in := range append(ints, more...) {
			fmt.Println(rc.Name, in.String())
		}
	}
	// Output:
	// oncall-cn webhook[0]
	// oncall-cn feishu[1]
	// oncall-cn wecom[2]
}
