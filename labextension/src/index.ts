/**
 * forge-nb's JupyterLab extension:
 *
 * - a left sidebar with live per-queue counts and pause/resume (`ForgeSidebar`);
 * - the command `forge-nb:open` ({tab}) opening a Mission Control tab as a main-area
 *   panel: an iframe of `<base>forge-nb/?tab=…` served by jupyter-server-proxy (same
 *   origin as Lab, so the dashboard's `frame-ancestors 'self'` lets it in);
 * - Lab's light/dark theme passed on: `&theme=dark` when opening, panels (and the
 *   launcher tile's) reloaded in the new theme when it changes.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  IFrame,
  IThemeManager,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import forgeSvg from '../style/icons/forge-nb.svg';
import { ForgeSidebar } from './sidebar';
import { TABS, findTab } from './tabs';
import { dashboardUrl, withTheme } from './urls';

const NS = 'forge-nb';
const OPEN = 'forge-nb:open';
/** jupyter-server-proxy's command and the id it gives our launcher tile's panel. */
const PROXY_OPEN = 'server-proxy:open';
const PROXY_PANEL_ID = 'server-proxy:forge-nb';
/** What the dashboard needs from its iframe (jupyter-server-proxy grants the same). */
const SANDBOX: IFrame.SandboxExceptions[] = [
  'allow-same-origin',
  'allow-scripts',
  'allow-forms',
  'allow-popups',
  'allow-downloads',
  'allow-modals'
];

export const forgeIcon = new LabIcon({ name: 'forge-nb:logo', svgstr: forgeSvg });

function isDark(themes: IThemeManager | null): boolean {
  const theme = themes?.theme;
  if (themes && theme) {
    return !themes.isLight(theme);
  }
  return document.body.dataset.jpThemeLight === 'false';
}

function iframeOf(widget: Widget): IFrame | null {
  const content = (widget as MainAreaWidget).content;
  return content instanceof IFrame ? content : null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'forge-nb:plugin',
  description: 'forge-nb: queue sidebar and Mission Control panels',
  autoStart: true,
  optional: [ILayoutRestorer, IThemeManager, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    themes: IThemeManager | null,
    palette: ICommandPalette | null
  ) => {
    const baseUrl = PageConfig.getBaseUrl();
    const settings = ServerConnection.makeSettings();
    const tracker = new WidgetTracker<MainAreaWidget<IFrame>>({ namespace: NS });

    app.commands.addCommand(OPEN, {
      label: args => `Mission Control: ${findTab(args.tab as string | undefined).title}`,
      caption: 'Open a Mission Control tab as a panel',
      icon: args => (args.isPalette ? undefined : forgeIcon),
      execute: args => {
        const tab = findTab(args.tab as string | undefined);
        const id = `forge-nb-${tab.slug}`;
        const open = tracker.find(widget => widget.id === id);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const content = new IFrame({ sandbox: SANDBOX });
        content.url = dashboardUrl(baseUrl, tab.slug, isDark(themes));
        content.addClass('fnb-lab-frame');
        const widget = new MainAreaWidget({ content });
        widget.id = id;
        widget.title.label = `Mission Control · ${tab.title}`;
        widget.title.icon = forgeIcon;
        widget.title.closable = true;
        widget.addClass('fnb-lab-panel');
        void tracker.add(widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      }
    });

    if (restorer) {
      void restorer.restore(tracker, {
        command: OPEN,
        args: widget => ({ tab: widget.id.slice('forge-nb-'.length) }),
        name: widget => widget.id
      });
    }
    if (palette) {
      for (const tab of TABS) {
        palette.addItem({ command: OPEN, args: { tab: tab.slug }, category: 'forge-nb' });
      }
    }

    const sidebar = new ForgeSidebar({
      baseUrl,
      settings,
      openTab: tab => void app.commands.execute(OPEN, { tab })
    });
    sidebar.title.icon = forgeIcon;
    app.shell.add(sidebar, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(sidebar, sidebar.id);
    }

    /** Our panels and the launcher tile's (jupyter-server-proxy's) in the current theme. */
    const followTheme = (): void => {
      const dark = isDark(themes);
      const frames: IFrame[] = [];
      tracker.forEach(widget => frames.push(widget.content));
      for (const widget of app.shell.widgets('main')) {
        const frame = iframeOf(widget);
        if (frame && frame.id === PROXY_PANEL_ID) {
          frames.push(frame);
        }
      }
      for (const frame of frames) {
        const url = withTheme(frame.url, dark);
        if (url !== frame.url) {
          frame.url = url;
        }
      }
    };
    themes?.themeChanged.connect(followTheme);
    // Panels restored from the workspace keep the theme of the day they were opened.
    void app.restored.then(followTheme);
    // The launcher tile opens `<base>forge-nb/` as given to jupyter-server-proxy: pass the
    // theme on as soon as its panel exists.
    app.commands.commandExecuted.connect((_, executed) => {
      if (executed.id === PROXY_OPEN && executed.args.id === PROXY_PANEL_ID && isDark(themes)) {
        void Promise.resolve(executed.result).then(() => followTheme());
      }
    });
  }
};

export default plugin;
