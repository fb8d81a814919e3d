// English and Simplified Chinese labels. The language defaults to the
// browser's, can be switched, and is remembered in localStorage.
import { useEffect, useState } from 'preact/hooks';

export type Lang = 'en' | 'zh-CN';
export const languages: { id: Lang; label: string }[] = [
  { id: 'en', label: 'English' },
  { id: 'zh-CN', label: '简体中文' },
];

const en = {
  'nav.services': 'Services',
  'nav.traces': 'Traces',
  'nav.logs': 'Logs',
  'nav.metrics': 'Metrics',
  'app.language': 'Language',
  'app.theme': 'Theme',
  'app.theme.light': 'Light',
  'app.theme.dark': 'Dark',
  'app.logout': 'Sign out',
  'app.notFound': 'Page not found.',
  'common.loading': 'Loading…',
  'common.search': 'Search',
  'common.run': 'Run',
  'common.none': 'Nothing found.',
  'common.error': 'Error',
  'common.all': 'All',
  'common.copy': 'Copy',
  'common.close': 'Close',
  'common.custom': 'Custom',
  'common.from': 'From',
  'common.to': 'To',
  'time.now': 'just now',
  'time.ago': '{v} ago',
  'time.last': 'Last {v}',
  'login.title': 'Sign in to Vigil',
  'login.help': 'This Vigil requires a read token. It is kept for this browser session only.',
  'login.token': 'Read token',
  'login.submit': 'Sign in',
  'login.invalid': 'The token was not accepted.',
  'services.title': 'Services',
  'services.name': 'Service',
  'services.lastSeen': 'Last seen',
  'services.signals': 'Signals',
  'services.empty': 'Vigil has not seen any service yet. Point an OTLP exporter at it.',
  'services.filter': 'Filter services',
  'signal.traces': 'traces',
  'signal.logs': 'logs',
  'signal.metrics': 'metrics',
  'traces.title': 'Find traces',
  'traces.service': 'Service',
  'traces.operation': 'Operation',
  'traces.anyOperation': 'all operations',
  'traces.pickService': 'choose a service',
  'traces.tags': 'Tags',
  'traces.tagsHint': 'key=value pairs, e.g. http.status_code=500 error=true',
  'traces.minDuration': 'Min duration',
  'traces.maxDuration': 'Max duration',
  'traces.durationHint': 'e.g. 100ms, 1.2s',
  'traces.range': 'Time range',
  'traces.limit': 'Limit',
  'traces.found': '{n} traces',
  'traces.spans': '{n} spans',
  'traces.errors': '{n} errors',
  'traces.duration': 'Duration',
  'traces.start': 'Start',
  'traces.empty': 'No trace matches.',
  'traces.sortNewest': 'Most recent',
  'traces.sortLongest': 'Longest first',
  'traces.sortErrors': 'Most errors',
  'traces.chartHint': 'Duration of each trace over time; click a point to open it.',
  'traces.openById': 'Trace ID',
  'traces.open': 'Open',
  'trace.services': 'Services',
  'trace.depth': 'Depth',
  'trace.total': 'Total spans',
  'trace.started': 'Started',
  'trace.find': 'Find in trace',
  'trace.matches': '{n} matches',
  'trace.criticalPath': 'Critical path',
  'trace.expandAll': 'Expand all',
  'trace.collapseAll': 'Collapse all',
  'trace.name': 'Service and operation',
  'trace.notFound': 'Trace not found.',
  'trace.logs': 'Logs of this trace',
  'trace.warnings': 'Warnings',
  'span.attributes': 'Attributes',
  'span.resource': 'Resource',
  'span.events': 'Events',
  'span.links': 'Links',
  'span.status': 'Status',
  'span.logs': 'Logs',
  'span.noLogs': 'No log records for this span.',
  'span.id': 'Span ID',
  'span.parent': 'Parent',
  'span.start': 'Start',
  'span.duration': 'Duration',
  'span.kind': 'Kind',
  'span.service': 'Service',
  'span.ok': 'OK',
  'span.unset': 'Unset',
  'span.error': 'Error',
  'logs.title': 'Logs',
  'logs.service': 'Service',
  'logs.anyService': 'all services',
  'logs.severity': 'Min severity',
  'logs.text': 'Text',
  'logs.textHint': 'words or "quoted phrase"',
  'logs.traceId': 'Trace ID',
  'logs.attrs': 'Attributes',
  'logs.attrsHint': 'key=value pairs',
  'logs.tail': 'Live tail',
  'logs.tailConnecting': 'connecting…',
  'logs.tailLive': 'live',
  'logs.tailPaused': 'paused — {n} new',
  'logs.tailResume': 'Resume',
  'logs.tailClosed': 'disconnected',
  'logs.tailIdle': 'stopped: no matching records for a while',
  'logs.tailReconnect': 'Reconnect',
  'logs.dropped': '{n} records skipped: the tail fell behind',
  'logs.more': 'Loading more…',
  'logs.end': 'No more records.',
  'logs.time': 'Time',
  'logs.body': 'Message',
  'logs.empty': 'No log record matches.',
  'logs.volume': 'Volume',
  'logs.approximate': 'approximate',
  'metrics.title': 'Metrics',
  'metrics.query': 'PromQL query',
  'metrics.placeholder': 'e.g. rate(http_server_request_duration_seconds_count[5m])',
  'metrics.runHint': 'Ctrl+Enter runs the query',
  'metrics.range': 'Range',
  'metrics.end': 'End',
  'metrics.endNow': 'now',
  'metrics.step': 'Step',
  'metrics.stepAuto': 'auto',
  'metrics.chart': 'Chart',
  'metrics.table': 'Table',
  'metrics.series': 'Series',
  'metrics.value': 'Value',
  'metrics.noData': 'The query returned no data.',
  'metrics.tooMany': 'Showing {n} of {total} series.',
  'metrics.empty': 'Type a PromQL expression and run it.',
  'metrics.metric': 'metric',
  'metrics.label': 'label',
  'metrics.function': 'function',
};

export type MessageKey = keyof typeof en;

const zh: Record<MessageKey, string> = {
  'nav.services': '服务',
  'nav.traces': '链路追踪',
  'nav.logs': '日志',
  'nav.metrics': '指标',
  'app.language': '语言',
  'app.theme': '主题',
  'app.theme.light': '浅色',
  'app.theme.dark': '深色',
  'app.logout': '退出登录',
  'app.notFound': '页面不存在。',
  'common.loading': '加载中…',
  'common.search': '搜索',
  'common.run': '执行',
  'common.none': '没有结果。',
  'common.error': '错误',
  'common.all': '全部',
  'common.copy': '复制',
  'common.close': '关闭',
  'common.custom': '自定义',
  'common.from': '开始',
  'common.to': '结束',
  'time.now': '刚刚',
  'time.ago': '{v}前',
  'time.last': '最近 {v}',
  'login.title': '登录 Vigil',
  'login.help': '此 Vigil 需要读取令牌。令牌仅在本次浏览器会话中保存。',
  'login.token': '读取令牌',
  'login.submit': '登录',
  'login.invalid': '令牌无效。',
  'services.title': '服务',
  'services.name': '服务',
  'services.lastSeen': '最近上报',
  'services.signals': '信号',
  'services.empty': 'Vigil 还没有收到任何服务的数据。请将 OTLP 导出器指向它。',
  'services.filter': '筛选服务',
  'signal.traces': '链路',
  'signal.logs': '日志',
  'signal.metrics': '指标',
  'traces.title': '查找链路',
  'traces.service': '服务',
  'traces.operation': '操作',
  'traces.anyOperation': '全部操作',
  'traces.pickService': '选择服务',
  'traces.tags': '标签',
  'traces.tagsHint': 'key=value 形式，例如 http.status_code=500 error=true',
  'traces.minDuration': '最短耗时',
  'traces.maxDuration': '最长耗时',
  'traces.durationHint': '例如 100ms、1.2s',
  'traces.range': '时间范围',
  'traces.limit': '数量上限',
  'traces.found': '{n} 条链路',
  'traces.spans': '{n} 个跨度',
  'traces.errors': '{n} 个错误',
  'traces.duration': '耗时',
  'traces.start': '开始时间',
  'traces.empty': '没有匹配的链路。',
  'traces.sortNewest': '最新',
  'traces.sortLongest': '耗时最长',
  'traces.sortErrors': '错误最多',
  'traces.chartHint': '各链路耗时随时间分布；点击数据点打开链路。',
  'traces.openById': '链路 ID',
  'traces.open': '打开',
  'trace.services': '服务',
  'trace.depth': '深度',
  'trace.total': '跨度总数',
  'trace.started': '开始于',
  'trace.find': '在链路中查找',
  'trace.matches': '{n} 处匹配',
  'trace.criticalPath': '关键路径',
  'trace.expandAll': '全部展开',
  'trace.collapseAll': '全部折叠',
  'trace.name': '服务与操作',
  'trace.notFound': '链路不存在。',
  'trace.logs': '该链路的日志',
  'trace.warnings': '警告',
  'span.attributes': '属性',
  'span.resource': '资源',
  'span.events': '事件',
  'span.links': '链接',
  'span.status': '状态',
  'span.logs': '日志',
  'span.noLogs': '该跨度没有日志记录。',
  'span.id': '跨度 ID',
  'span.parent': '父跨度',
  'span.start': '开始',
  'span.duration': '耗时',
  'span.kind': '类型',
  'span.service': '服务',
  'span.ok': '正常',
  'span.unset': '未设置',
  'span.error': '错误',
  'logs.title': '日志',
  'logs.service': '服务',
  'logs.anyService': '全部服务',
  'logs.severity': '最低级别',
  'logs.text': '文本',
  'logs.textHint': '关键词或 "带引号的短语"',
  'logs.traceId': '链路 ID',
  'logs.attrs': '属性',
  'logs.attrsHint': 'key=value 形式',
  'logs.tail': '实时跟踪',
  'logs.tailConnecting': '连接中…',
  'logs.tailLive': '实时',
  'logs.tailPaused': '已暂停 — {n} 条新日志',
  'logs.tailResume': '继续',
  'logs.tailClosed': '已断开',
  'logs.tailIdle': '已停止：长时间没有匹配的日志',
  'logs.tailReconnect': '重新连接',
  'logs.dropped': '跳过了 {n} 条记录：实时跟踪跟不上',
  'logs.more': '加载更多…',
  'logs.end': '没有更多记录。',
  'logs.time': '时间',
  'logs.body': '内容',
  'logs.empty': '没有匹配的日志。',
  'logs.volume': '日志量',
  'logs.approximate': '近似值',
  'metrics.title': '指标',
  'metrics.query': 'PromQL 查询',
  'metrics.placeholder': '例如 rate(http_server_request_duration_seconds_count[5m])',
  'metrics.runHint': 'Ctrl+Enter 执行查询',
  'metrics.range': '范围',
  'metrics.end': '结束时间',
  'metrics.endNow': '现在',
  'metrics.step': '步长',
  'metrics.stepAuto': '自动',
  'metrics.chart': '图表',
  'metrics.table': '表格',
  'metrics.series': '序列',
  'metrics.value': '值',
  'metrics.noData': '查询没有返回数据。',
  'metrics.tooMany': '显示 {total} 个序列中的 {n} 个。',
  'metrics.empty': '输入 PromQL 表达式并执行。',
  'metrics.metric': '指标',
  'metrics.label': '标签',
  'metrics.function': '函数',
};

const dicts: Record<Lang, Record<MessageKey, string>> = { en, 'zh-CN': zh };
const KEY = 'vigil.lang';
const listeners = new Set<() => void>();

/** pickLang chooses the language: the remembered one, else the browser's first Chinese or English preference, else English. */
export function pickLang(stored: string | null, browser: readonly string[]): Lang {
  if (stored === 'en' || stored === 'zh-CN') return stored;
  for (const l of browser) {
    const low = l.toLowerCase();
    if (low.startsWith('zh')) return 'zh-CN';
    if (low.startsWith('en')) return 'en';
  }
  return 'en';
}

function stored(): string | null {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

let lang: Lang = pickLang(stored(), typeof navigator !== 'undefined' ? navigator.languages ?? [navigator.language] : []);

export function getLang(): Lang {
  return lang;
}

export function setLang(l: Lang): void {
  lang = l;
  try {
    localStorage.setItem(KEY, l);
  } catch {
    // not remembered
  }
  document.documentElement.lang = l;
  listeners.forEach((f) => f());
}

/** t translates key in the current language, filling {name} placeholders. */
export function t(key: MessageKey, vars?: Record<string, string | number>): string {
  let s = dicts[lang][key] ?? en[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** useLang re-renders the caller when the language changes. */
export function useLang(): Lang {
  const [, set] = useState(0);
  useEffect(() => {
    const f = () => set((n) => n + 1);
    listeners.add(f);
    return () => {
      listeners.delete(f);
    };
  }, []);
  return lang;
}

export function messageKeys(l: Lang): string[] {
  return Object.keys(dicts[l]);
}
