/**
 * analysis-hub's JupyterLab plugin: "Publish as pipeline…" in every notebook's toolbar and in
 * the File menu (schema/plugin.json). A published notebook records its pipeline in its
 * metadata (`analysis_hub.pipeline`); its toolbar then shows the pipeline, its active version,
 * and offers "Publish new version…". The active version is asked again when the person comes
 * back to the tab and every minute while it is shown, so a rollback made elsewhere shows up.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  labContext,
  pipelinePage,
  pipelineSummary,
  publish,
  PublishedTo,
  serverConfig
} from './api';
import { FormValue, PublishForm } from './dialog';

const COMMAND = 'analysis-hub:publish-pipeline';
const METADATA_KEY = 'analysis_hub';
// A rollback in another tab shows as soon as the person is back (focus); the poll covers a
// change made while this tab stays in view. A GET: the activity policy never counts it as work.
const REFRESH_EVERY_MS = 60_000;

function publishedTo(panel: NotebookPanel | null): PublishedTo | null {
  const model = panel?.context.model;
  const recorded = model?.getMetadata(METADATA_KEY)?.pipeline;
  return recorded && recorded.team && recorded.name ? (recorded as PublishedTo) : null;
}

function link(href: string, text: string): HTMLAnchorElement {
  const anchor = document.createElement('a');
  anchor.href = href;
  anchor.target = '_blank';
  anchor.rel = 'noopener';
  anchor.textContent = text;
  return anchor;
}

/** The toolbar item: the pipeline this notebook is published to, and the button. */
class PublishToolbarItem extends Widget {
  private label = document.createElement('a');
  private button = document.createElement('button');
  private timer = 0;

  constructor(private panel: NotebookPanel, private app: JupyterFrontEnd) {
    super();
    this.addClass('ah-publish-toolbar');
    this.label.className = 'ah-publish-status';
    this.label.target = '_blank';
    this.button.className = 'jp-ToolbarButtonComponent jp-mod-minimal jp-Button ah-publish-button';
    this.button.addEventListener('click', () => {
      this.app.shell.activateById(this.panel.id);
      void this.app.commands.execute(COMMAND);
    });
    this.node.append(this.label, this.button);
    panel.context.ready.then(() => {
      panel.context.model.metadataChanged.connect(() => void this.refresh());
      void this.refresh();
    });
    void this.refresh();
    window.addEventListener('focus', this.refreshIfShown);
    document.addEventListener('visibilitychange', this.refreshIfShown);
    this.timer = window.setInterval(this.refreshIfShown, REFRESH_EVERY_MS);
  }

  dispose(): void {
    window.removeEventListener('focus', this.refreshIfShown);
    document.removeEventListener('visibilitychange', this.refreshIfShown);
    window.clearInterval(this.timer);
    super.dispose();
  }

  /** Ask again only for a published notebook on screen: hidden tabs and panels cost nothing. */
  private refreshIfShown = (): void => {
    if (!document.hidden && this.isVisible && publishedTo(this.panel)) {
      void this.refresh();
    }
  };

  async refresh(): Promise<void> {
    const published = publishedTo(this.panel);
    this.button.textContent = published ? 'Publish new version…' : 'Publish as pipeline…';
    this.button.title = 'Publish this notebook as a version of a team pipeline';
    if (!published) {
      this.label.textContent = '';
      this.label.removeAttribute('href');
      return;
    }
    this.label.href = pipelinePage(published.team, published.name);
    const pipeline = `${published.team}/${published.name}`;
    if (!this.label.textContent?.startsWith(pipeline)) {  // a refresh keeps what it shows until it knows
      this.label.textContent = `${pipeline} v${published.version}`;
    }
    try {
      const summary = await pipelineSummary(published.team, published.name);
      const active = summary.active_version;
      this.label.textContent = `${pipeline} · active v${active ?? '–'}`;
      this.label.title = `${pipeline}: published v${published.version}; the pipeline runs v${active ?? 'nothing yet'}`;
    } catch (error) {
      this.label.title = (error as Error).message;
    }
  }
}

class ToolbarExtension implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const item = new PublishToolbarItem(panel, this.app);
    panel.toolbar.insertAfter('spacer', 'analysis-hub-publish', item);
    return item;
  }
}

async function runPublish(panel: NotebookPanel): Promise<void> {
  const context = panel.context;
  await context.ready;
  // The server publishes the file as saved: save first so what is seen is what is published.
  if (context.model.dirty) {
    await context.save();
  }
  let config, lab;
  try {
    config = await serverConfig();
    lab = await labContext(context.model.toJSON());
  } catch (error) {
    await showErrorMessage('Publish as pipeline', (error as Error).message);
    return;
  }
  const published = publishedTo(panel);
  const form = new PublishForm(lab, context.path, config.profile, published);
  const result = await showDialog<FormValue>({
    title: published ? 'Publish new version' : 'Publish as pipeline',
    body: form,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })],
    focusNodeSelector: 'input[name="name"]'
  });
  if (!result.button.accept || !result.value) {
    return;
  }
  const value = result.value;
  if (value.problems.length) {
    await showErrorMessage('Publish as pipeline', value.problems.join('\n'));
    return;
  }
  let answer;
  try {
    answer = await publish({
      path: context.path,
      team: value.team,
      name: value.name,
      profile: value.profile,
      message: value.message,
      deploy: value.deploy
    });
  } catch (error) {
    const message = error instanceof ApiError ? error.message : String(error);
    await showErrorMessage('Publish as pipeline', message);
    return;
  }
  const number = answer.version.number;
  context.model.setMetadata(METADATA_KEY, {
    ...(context.model.getMetadata(METADATA_KEY) || {}),
    pipeline: { team: value.team, name: value.name, version: number }
  });
  await context.save();
  const body = document.createElement('div');
  body.className = 'ah-publish-done';
  const deployed = answer.pipeline ? ` and deployed (active: v${answer.pipeline.active_version})` : '';
  body.append(`Published ${value.team}/${value.name} v${number} with profile ${answer.version.profile}${deployed}. `);
  body.append(link(pipelinePage(value.team, value.name), 'Open the pipeline page'));
  await showDialog({ title: 'Published', body: new Widget({ node: body }), buttons: [Dialog.okButton()] });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'analysis-hub-lab:plugin',
  description: 'Publish a notebook as an analysis-hub pipeline.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    app.commands.addCommand(COMMAND, {
      label: () => (publishedTo(tracker.currentWidget) ? 'Publish New Pipeline Version…' : 'Publish as Pipeline…'),
      caption: 'Publish this notebook as a version of a team pipeline',
      isEnabled: () => tracker.currentWidget !== null,
      execute: () => {
        const panel = tracker.currentWidget;
        return panel ? runPublish(panel) : undefined;
      }
    });
    app.docRegistry.addWidgetExtension('Notebook', new ToolbarExtension(app));
  }
};

export default plugin;
