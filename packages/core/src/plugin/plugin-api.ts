import type { DependencyContainer } from 'tsyringe';
import { ErrorCodes, TapfitError } from '../errors';
import { tapOnlyView, type Hooks } from '../hooks/hooks';
import { tokenName, Tokens } from '../services/tokens';
import type { PluginApi, ServiceRegistry, TapfitPlugin, TrainerView } from './types';

/**
 * The services registry a plugin sees: this trainer's own container. `register` adds a
 * service, or replaces one only if the plugin declares it in `provides`; `decorate`
 * wraps the current one (decorators compose, so any plugin may).
 */
export function serviceRegistry(container: DependencyContainer, plugin: Pick<TapfitPlugin, 'name' | 'provides'>): ServiceRegistry {
  return {
    container,
    register: (token, value) => {
      if (container.isRegistered(token, true) && !(plugin.provides ?? []).includes(token)) {
        throw new TapfitError(
          ErrorCodes.PLUGIN_PROVIDES,
          `plugin '${plugin.name}' replaces the service '${tokenName(token)}' without declaring it. Add \`provides: [Tokens.${tokenName(token)}]\` to the plugin ` +
            `(so two plugins replacing it are refused at registration), or use services.decorate to wrap it instead.`,
        );
      }
      container.register(token, { useValue: value });
    },
    decorate: (token, wrap) => {
      const previous = container.resolve(token);
      container.register(token, { useValue: wrap(previous) });
    },
    resolve: (token) => container.resolve(token),
  };
}

/** What `plugin.apply` receives: hooks tapped in the plugin's name, services, a read-only trainer view. */
export function createPluginApi(plugin: Pick<TapfitPlugin, 'name' | 'provides'>, hooks: Hooks, container: DependencyContainer, trainer: TrainerView): PluginApi {
  return { hooks: tapOnlyView(hooks, plugin.name), services: serviceRegistry(container, plugin), trainer, logger: container.resolve(Tokens.Logger) };
}
