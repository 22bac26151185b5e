/**
 * Mission Control's tabs, in the dashboard's order: `title` as the dashboard shows it,
 * `slug` as `?tab=` takes it (forge_nb/dashboard/app.py `tab_slug`). A Python test
 * checks this list against the dashboard's own.
 */
export interface ITab {
  readonly slug: string;
  readonly title: string;
}

export const TABS: readonly ITab[] = [
  { slug: 'overview', title: 'Overview' },
  { slug: 'jobs', title: 'Jobs' },
  { slug: 'scheduled', title: 'Scheduled' },
  { slug: 'retries', title: 'Retries' },
  { slug: 'dead', title: 'Dead' },
  { slug: 'cron', title: 'Cron' },
  { slug: 'queues', title: 'Queues' },
  { slug: 'processes', title: 'Processes' },
  { slug: 'resources', title: 'Resources' },
  { slug: 'db-health', title: 'DB health' },
  { slug: 'per-queue-metrics', title: 'Per-queue metrics' }
];

export function findTab(slug: string | undefined): ITab {
  return TABS.find(tab => tab.slug === slug) ?? TABS[0];
}
