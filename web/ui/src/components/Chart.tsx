// A uPlot chart that follows its container's width and is rebuilt when its
// options change (series count, theme); data updates reuse the instance.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartProps {
  options: (width: number) => uPlot.Options;
  data: uPlot.AlignedData;
  /** optionsKey changes when options must be rebuilt. */
  optionsKey: string;
  height?: number;
  class?: string;
  onCreate?: (u: uPlot) => void;
}

export function Chart({ options, data, optionsKey, class: cls, onCreate }: ChartProps) {
  const ref = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const dataRef = useRef(data);
  dataRef.current = data;

  useEffect(() => {
    const el = ref.current!;
    const width = Math.max(200, el.clientWidth);
    const u = new uPlot(options(width), dataRef.current, el);
    plot.current = u;
    onCreate?.(u);
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: u.height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [optionsKey]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return <div ref={ref} class={'chart ' + (cls ?? '')} />;
}

/** themeColors reads the chart colours of the current theme from CSS variables. */
export function themeColors(): { axis: string; grid: string; text: string } {
  const cs = getComputedStyle(document.documentElement);
  return {
    axis: cs.getPropertyValue('--muted').trim() || '#888',
    grid: cs.getPropertyValue('--grid').trim() || 'rgba(128,128,128,.15)',
    text: cs.getPropertyValue('--fg').trim() || '#222',
  };
}

export const seriesPalette = [
  '#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777',
  '#4f46e5', '#65a30d', '#0d9488', '#c026d3',
];
