// One ECharts chart, drawn on a canvas: only the parts of ECharts the statistics use are loaded.
// A canvas says nothing to a screen reader, so the chart is an image named by a summary of its
// figures; the table below it is the accessible view of every number.
import { useEffect, useRef } from 'react'
import { BarChart, LineChart } from 'echarts/charts'
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components'
import * as echarts from 'echarts/core'
import { CanvasRenderer } from 'echarts/renderers'

echarts.use([LineChart, BarChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer])

export type Series = { name: string; values: (number | null)[] }

export function Chart({
  kind,
  categories,
  series,
  summary,
  unit,
}: {
  kind: 'line' | 'bar'
  categories: string[]
  series: Series[]
  summary: string
  unit: string
}) {
  const element = useRef<HTMLDivElement>(null)

  useEffect(() => {
    if (!element.current) return
    const chart = echarts.init(element.current, undefined, { renderer: 'canvas' })
    const resize = new ResizeObserver(() => chart.resize())
    resize.observe(element.current)
    chart.setOption({
      animation: false,
      tooltip: { trigger: 'axis' },
      legend: { top: 0 },
      grid: { left: 48, right: 16, top: 64, bottom: 32 },
      xAxis: { type: 'category', data: categories },
      yAxis: { type: 'value', name: unit, min: 0, max: 100 },
      series: series.map((s) => ({
        name: s.name,
        type: kind,
        data: s.values,
        connectNulls: false,
      })),
    })
    return () => {
      resize.disconnect()
      chart.dispose()
    }
  }, [kind, categories, series, unit])

  return <div ref={element} className="stats-chart" role="img" aria-label={summary} />
}
