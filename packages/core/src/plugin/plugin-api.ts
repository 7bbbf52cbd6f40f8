import type { DependencyContainer, InjectionToken } from 'tsyringe';
import { ErrorCodes, TapfitError } from '../errors';
import { tapOnlyView, type Hooks } from '../hooks/hooks';
import { tokenName, Tokens } from '../services/tokens';
import type { PluginApi, ServiceRegistry, TapfitPlugin, TrainerView } from './types';

/** Containers of trainers that are set up: their services are fixed (the step holds them). */
const sealed = new WeakSet<DependencyContainer>();

/** A decoration of a service: the wrap, and the plugin that applied it (named by services that cannot carry it, such as dataParallel's workers). */
interface Decoration {
  plugin: string;
  wrap: (v: unknown) => unknown;
}

/** Decorators applied per token of a container, re-applied over a later replacement. */
const decorators = new WeakMap<DependencyContainer, Map<InjectionToken<unknown>, Decoration[]>>();

function decoratorsOf(container: DependencyContainer): Map<InjectionToken<unknown>, Decoration[]> {
  let m = decorators.get(container);
  if (!m) decorators.set(container, (m = new Map()));
  return m;
}

/** The plugins that decorated `token` in this trainer's container so far, in the order they did (a plugin named once). */
export function pluginsDecorating(container: DependencyContainer, token: InjectionToken<unknown>): readonly string[] {
  return [...new Set((decorators.get(container)?.get(token) ?? []).map((d) => d.plugin))];
}

/** Called by the trainer at the end of setup: register/decorate are refused afterwards. */
export function sealServices(container: DependencyContainer): void {
  sealed.add(container);
}

/**
 * The services registry a plugin sees: this trainer's own container. `register` adds a
 * service, or replaces one only if the plugin declares it in `provides`; `decorate`
 * wraps the current one (decorators compose, so any plugin may).
 */
export function serviceRegistry(container: DependencyContainer, plugin: Pick<TapfitPlugin, 'name' | 'provides'>): ServiceRegistry {
  const wraps = decoratorsOf(container);
  const refuseSealed = (what: string, token: InjectionToken<unknown>): void => {
    if (!sealed.has(container)) return;
    throw new TapfitError(
      ErrorCodes.HOOKS_SEALED,
      `plugin '${plugin.name}' tried to ${what} the service '${tokenName(token)}' after the trainer was set up, when the step already holds its services. Do it inside plugin.apply().`,
    );
  };
  return {
    container,
    register: (token, value) => {
      refuseSealed('register', token);
      if (container.isRegistered(token, true) && !(plugin.provides ?? []).includes(token)) {
        throw new TapfitError(
          ErrorCodes.PLUGIN_PROVIDES,
          `plugin '${plugin.name}' replaces the service '${tokenName(token)}' without declaring it. Add \`provides: [Tokens.${tokenName(token)}]\` to the plugin ` +
            `(so two plugins replacing it are refused at registration), or use services.decorate to wrap it instead.`,
        );
      }
      // Decorators registered before this replacement wrap it too: plugin order does not drop them.
      const decorated = (wraps.get(token) ?? []).reduce((v, d) => d.wrap(v), value as unknown);
      container.register(token, { useValue: decorated });
    },
    decorate: (token, wrap) => {
      refuseSealed('decorate', token);
      const previous = container.resolve(token);
      const next = wrap(previous); // a wrap that throws is not recorded either
      wraps.set(token, [...(wraps.get(token) ?? []), { plugin: plugin.name, wrap: wrap as (v: unknown) => unknown }]);
      container.register(token, { useValue: next });
    },
    resolve: (token) => container.resolve(token),
  };
}

/** What `plugin.apply` receives: hooks tapped in the plugin's name, services, a read-only trainer view. */
export function createPluginApi(plugin: Pick<TapfitPlugin, 'name' | 'provides'>, hooks: Hooks, container: DependencyContainer, trainer: TrainerView): PluginApi {
  return { hooks: tapOnlyView(hooks, plugin.name), services: serviceRegistry(container, plugin), trainer, logger: container.resolve(Tokens.Logger) };
}
